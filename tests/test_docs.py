"""The documentation site: it builds strictly, its API reference covers every public name, its
guides' Python blocks run, and its statements about versions and the CLI match the code."""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text())
PUBLIC_MODULES = ["keyfan", "keyfan.ensemble", "keyfan.transforms", "keyfan.testing", "keyfan.recipes",
                  "keyfan._pitfalls"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


def test_site_builds_strictly(tmp_path):
    """Broken links, missing anchors, unknown API names and docstring warnings all fail."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    html = (tmp_path / "site" / "api" / "keyfan" / "index.html").read_text()
    for name in ("keyfan.key", "keyfan.normal", "keyfan.audit"):
        assert f'id="{name}"' in html, name


def _public_names(module_name: str) -> list[str]:
    import importlib

    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)]
    return [n for n in names if not inspect.ismodule(getattr(module, n))]


def _documented() -> set[str]:
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    return set(re.findall(r"^::: ([\w.]+)", text, flags=re.M))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_api_reference_covers_every_public_name(module_name):
    documented = _documented()
    missing = [n for n in _public_names(module_name) if f"{module_name}.{n}" not in documented]
    assert not missing, f"{module_name} names without an API entry (add '::: {module_name}.NAME'): {missing}"


def test_api_reference_covers_the_lazy_names():
    documented = _documented()
    assert {"keyfan.ensemble.Ensemble", "keyfan.ensemble.shared_vmap"} <= documented


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_python_blocks_run(page, tmp_path):
    """Each page's ```python blocks run in order, as one script (their asserts are checks)."""
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    script = "\n\n".join(f"# --- {page.name} block {i}\n{block}" for i, block in enumerate(blocks))
    (tmp_path / "page.py").write_text(script)
    proc = subprocess.run([sys.executable, "page.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def test_compatibility_page_states_the_package_ranges_and_pins():
    text = (DOCS / "compatibility.md").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(line.split("==") for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    requirements = project["dependencies"] + project["optional-dependencies"]["flax"]
    for requirement in requirements:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)(.*)", requirement).groups()
        ranges = ", ".join(part.replace(">=", ">= ").replace("<", "< ") for part in spec.split(","))
        row = next((line for line in text.splitlines()
                    if line.startswith("| ") and name in re.split(r"[ ,|]+", line.split("|")[1])), None)
        assert row is not None and ranges in row, (requirement, row)
        assert pins[name] in row, (name, pins[name], row)
    assert f">= {project['requires-python'].removeprefix('>=')}" in text


def test_cli_page_shows_the_tour_as_it_prints():
    from typer.testing import CliRunner

    from keyfan.cli import app

    page = (DOCS / "guides" / "cli.md").read_text()
    excerpt = page.split("The end of its output:")[1].split("```text\n")[1].split("```")[0]
    output = CliRunner().invoke(app, ["tour"], env={"COLUMNS": "120"}).output
    for line in excerpt.splitlines():
        if line.strip() != "...":
            assert line in output, line


def test_readme_links_resolve():
    """The README is the front page: its relative links into docs/, examples/ and the changelog exist."""
    readme = (ROOT / "README.md").read_text()
    links = [link for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme) if "://" not in link]
    assert len(links) >= 15
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing
