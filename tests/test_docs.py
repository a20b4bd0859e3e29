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
                  "keyfan.typing", "keyfan.streams"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    """The site, built once with ``mkdocs build --strict``."""
    out = tmp_path_factory.mktemp("site") / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


def test_site_builds_strictly(site):
    """Broken links, missing anchors, unknown API names and docstring warnings all fail."""
    html = (site / "api" / "keyfan" / "index.html").read_text()
    for name in ("keyfan.key", "keyfan.normal", "keyfan.audit"):
        assert f'id="{name}"' in html, name


SENTENCE_STARTS = {"See", "The", "A", "An", "For", "In", "It", "This", "Each", "With"}
"""Words a paragraph begins with: a heading that ends with one swallowed the next line."""


def _pages(site: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(site)): p.read_text() for p in site.rglob("*.html")
            if "404" not in p.name and "assets" not in p.parts}


def _html_problems(page: str, text: str) -> list[str]:
    """Raw Sphinx roles printed as text, a heading that ran into the next sentence, a table
    whose header row is empty: what the strict build lets through."""
    import html as html_lib

    problems = []
    body = text.split('<div class="md-content"', 1)[-1]
    plain = html_lib.unescape(re.sub(r"<[^>]+>", "", body))
    problems += [f"{page}: raw role {m!r}" for m in re.findall(r":(?:func|class|mod|meth|data|attr|exc):`", plain)]
    for heading in re.findall(r"<h[1-6][^>]*>(.*?)</h[1-6]>", body, flags=re.S):
        words = html_lib.unescape(re.sub(r"<[^>]+>", "", heading)).replace("¶", "").split()
        if words and words[-1] in SENTENCE_STARTS:
            problems.append(f"{page}: heading {' '.join(words)!r} ends with a sentence's first word")
    for head in re.findall(r"<thead>(.*?)</thead>", body, flags=re.S):
        if not re.sub(r"<[^>]+>|\s", "", head):
            problems.append(f"{page}: a table with an empty header row")
    return problems


def test_the_html_check_finds_each_defect():
    broken = ('<div class="md-content"><h2 id="x">Auditing key misuse See<a href="#x">¶</a></h2>'
              "<p>use :func:`keyfan.at`</p><table><thead><tr><th></th><th></th></tr></thead></table>")
    assert len(_html_problems("page", broken)) == 3
    clean = ('<div class="md-content"><h2>Speed</h2><p>see <code>keyfan.at</code></p>'
             "<table><thead><tr><th>Guide</th></tr></thead></table>")
    assert _html_problems("page", clean) == []


def test_built_html_reads_clean(site):
    problems = [p for page, text in _pages(site).items() for p in _html_problems(page, text)]
    assert not problems, "\n".join(problems[:40])


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
    def pins_of(name):
        return dict(line.split("==") for line in (ROOT / "requirements" / name).read_text().splitlines()
                    if "==" in line and not line.startswith("#"))

    pins, lowest = pins_of("constraints.txt"), pins_of("constraints-lowest.txt")
    requirements = project["dependencies"] + project["optional-dependencies"]["flax"]
    for requirement in requirements:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)(.*)", requirement).groups()
        ranges = ", ".join(part.replace(">=", ">= ").replace("<", "< ") for part in spec.split(","))
        row = next((line for line in text.splitlines()
                    if line.startswith("| ") and name in re.split(r"[ ,|]+", line.split("|")[1])), None)
        assert row is not None and ranges in row, (requirement, row)
        assert pins[name] in row, (name, pins[name], row)
        assert row.rstrip(" |").endswith(lowest[name]), (name, lowest[name], row)  # the lowest set, tested
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
