"""The package as users install it: a light core (jax and numpy only), optional extras that say
when they are missing, and one version everywhere."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys
import textwrap
import venv

import pytest

import keyfan

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPTIONAL = ("flax", "optax", "orbax", "matplotlib", "typer", "rich")
OPTIONAL_SET = "{" + ", ".join(map(repr, OPTIONAL)) + "}"

# A quick start and an audit that use only the core: keys, samplers, kf.vmap, transforms, audit.
CORE_SCRIPT = textwrap.dedent('''
    import sys
    import jax, jax.numpy as jnp
    import keyfan as kf

    key = kf.key(0)
    x = kf.normal(key, batch=(1000,), shape=(3,))
    canonical = jax.vmap(lambda k: jax.random.normal(k, (3,)))(kf.fan_out(key, (1000,)))
    assert (x == canonical).all()
    assert (x[7] == jax.random.normal(kf.at(key, 7), (3,))).all()

    def noisy(x, key):
        return x + jax.random.normal(key, x.shape)

    ys = kf.vmap(noisy, in_axes=(0, None), randomness="different")(jnp.zeros((4, 3)), key)
    assert (ys[2] == noisy(jnp.zeros(3), kf.at(key, 2))).all()
    assert kf.transforms.dropout(key, jnp.ones((4, 8)), 0.5, batch_axes=1).shape == (4, 8)
    report = kf.audit(noisy, jnp.zeros(3), jax.random.key(0), in_axes=(0, None))
    assert not report.ok and report.findings[0].kind is kf.AuditKind.SHARED_DRAW, report
    assert kf.audit(noisy, jnp.zeros(3), jax.random.key(0), in_axes=(0, 0)).ok
    loaded = sorted({m.split(".")[0] for m in sys.modules} & OPTIONAL_SET)
    assert not loaded, loaded
    print("core ok", kf.__version__)
''').replace("OPTIONAL_SET", OPTIONAL_SET)

# Makes the optional packages unimportable, as in an environment without the extras.
BLOCK = textwrap.dedent('''
    import sys
    class _Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in OPTIONAL_SET:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, _Missing())
''').replace("OPTIONAL_SET", OPTIONAL_SET)

MISSING_EXTRA = textwrap.dedent('''
    import keyfan as kf
    from keyfan import *  # the star import needs only the core too
    for get in (lambda: kf.Ensemble, lambda: kf.shared_vmap, lambda: kf.ensemble,
                lambda: __import__("keyfan.ensemble"),
                lambda: __import__("keyfan.recipes").recipes.batched_init_param_count(0, 2, 3)):
        try:
            get()
        except ImportError as err:
            assert "pip install 'keyfan[flax]'" in str(err), err
        else:
            raise AssertionError("no ImportError")
    print("extras ok")
''')


def _run(code: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT.parent)


def test_import_keyfan_loads_no_optional_dependency():
    proc = _run(CORE_SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_without_the_flax_extra_the_core_works_and_the_rest_names_the_extra():
    proc = _run(BLOCK + CORE_SCRIPT + MISSING_EXTRA)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "core ok" in proc.stdout and "extras ok" in proc.stdout


def test_without_the_cli_extra_the_keyfan_command_prints_one_line_naming_it():
    """What the ``keyfan`` script (``keyfan.__main__:main``) does without typer: exit 1, one line,
    no traceback (installed for real, without the extras: the slow tier's bare-core install test)."""
    proc = _run(BLOCK + "import sys; sys.argv = ['keyfan', '--help']\nfrom keyfan.__main__ import main\nmain()\n")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "keyfan: the command line needs the 'cli' extra (typer is not installed): pip install 'keyfan[cli]'"]


def test_lazy_names_are_the_ensemble_packages_own():
    from keyfan import ensemble

    assert keyfan.Ensemble is ensemble.Ensemble and keyfan.shared_vmap is ensemble.shared_vmap
    assert {"Ensemble", "shared_vmap", "ensemble"} <= set(dir(keyfan))
    with pytest.raises(AttributeError, match="no attribute 'Ensembel'"):
        keyfan.Ensembel  # noqa: B018


def test_demo_code_is_not_in_the_public_ensemble_namespace():
    from keyfan import ensemble

    for name in ("make_moons", "make_regression", "make_dataset", "Dataset", "MLP", "RunConfig", "run_ensemble"):
        assert not hasattr(ensemble, name), name
    assert set(ensemble.__all__) <= set(dir(ensemble))


def test_one_version_everywhere():
    from importlib.metadata import version

    assert keyfan.__version__ == version("keyfan")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(keyfan.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)


@pytest.mark.slow  # ~30 CPU-s of pip (a venv, wheels, two metadata builds). Default tier: the core
# without the extras (test_without_the_flax_extra_..., test_import_keyfan_loads_no_optional_dependency)
def test_bare_core_installs_from_the_local_path_and_runs(tmp_path):
    """``pip install <path>`` (no extras) into a fresh venv: only jax, jaxlib, numpy and their own
    dependencies arrive, and the quick start, kf.vmap, transforms and kf.audit run. About 20 s with
    a warm pip cache."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / ("Scripts" if os.name == "nt" else "bin") / "python")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    install = subprocess.run([*pip, "-c", str(ROOT / "requirements" / "constraints.txt"), str(ROOT)],
                             capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                            check=True).stdout.lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert {"keyfan", "jax", "jaxlib", "numpy"} <= names
    assert not names & {"flax", "optax", "orbax-checkpoint", "matplotlib", "typer", "rich"}, names
    proc = _run(CORE_SCRIPT + MISSING_EXTRA, python=python)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"core ok {keyfan.__version__}" in proc.stdout
    # The keyfan script without the cli extra: one line naming the extra, no traceback.
    script = env_dir / ("Scripts" if os.name == "nt" else "bin") / "keyfan"
    cli = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stderr
    assert cli.stderr.strip().splitlines() == [
        "keyfan: the command line needs the 'cli' extra (typer is not installed): pip install 'keyfan[cli]'"]
    # The README's install lines parse and resolve with the pip this venv ships (ensurepip's:
    # 23.2 on Python 3.11.7), which refuses the PEP 508 form "keyfan[all] @ git+file:///path".
    for line in _readme_install_lines():
        args = shlex.split(line.split("#")[0].replace("/path/to/keyfan", str(ROOT)))[2:]
        dry = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "--dry-run", "--no-deps",
                              *args], capture_output=True, text=True, timeout=600,
                             cwd=tmp_path)
        assert dry.returncode == 0 and "Preparing metadata" in dry.stdout, (line, dry.stdout + dry.stderr)


def _readme_install_lines() -> list[str]:
    block = (ROOT / "README.md").read_text().split("## Install", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("pip install") and "/path/to/keyfan" in line]
    assert len(lines) >= 2, block
    return lines
