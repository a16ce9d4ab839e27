"""The README, ARCHITECTURE.md and the pages in docs/ say only what is true of the code.

Every link (theirs, and benchmarks/README.md's and CHANGELOG.md's) leads to a file that exists,
and every #anchor to a heading (GitHub's slugs). Every command they show (in a bash block, or in
backticks: `python examples/X.py ...`, `python benchmarks/X.py ...`, `python -m tinynet`) is
parsed by that script's own argument parser, `build_parser()`, so a renamed or removed flag
fails here, naming the page. A flag named
alone (`--epochs N`) must be a flag of a script named in the same section (where the section names
none, on the page); only its name is checked, since its value is often a placeholder. Paths in
backticks exist, and so do the extras in `pip install -e ".[...]"`. The README stays one screen
of reading, with its two setup commands word for word (.ci/run runs the second).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import io
import pathlib
import re
import shlex
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*PAGES, ROOT / "benchmarks" / "README.md", ROOT / "CHANGELOG.md"]  # their links and paths are checked too
TWO_COMMANDS = [
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[plot]" && python examples/mnist_mlp.py',
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && pytest',
]
# commands a page shows that cannot be parsed as they stand, each with the reason
SKIP = {
    "python examples/...": "a placeholder for both MNIST examples, in how their timings were measured",
}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n?", re.S | re.M)
SCRIPT = re.compile(r"^(examples|benchmarks)/[\w.]+$")
REPO_PATH = re.compile(r"^(tinynet|tests|examples|benchmarks|docs|\.ci)/[\w./{},-]*$")
ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def name(page: pathlib.Path) -> str:
    return str(page.relative_to(ROOT))


# -- pages: prose, code, sections -------------------------------------------------------------


def prose(text: str) -> str:
    """The page without its fenced code blocks (each replaced by a blank line)."""
    return FENCE.sub("\n\n", text)


def sections(text: str) -> list[tuple[str, list[str], list[str]]]:
    """(heading, inline code spans, lines of bash blocks) for each section of a page."""
    found, heading, chunk = [], "", []
    parts = FENCE.split(text)  # prose, lang, body, prose, lang, body, ...
    for i in range(0, len(parts), 3):
        for line in parts[i].splitlines(keepends=True):
            if line.startswith("#"):
                found.append((heading, chunk))
                heading, chunk = line.strip("# \n"), []
            else:
                chunk.append(("prose", line))
        if i + 2 < len(parts):
            chunk.append((parts[i + 1], parts[i + 2]))
    found.append((heading, chunk))
    out = []
    for heading, chunk in found:
        text_ = "".join(t for kind, t in chunk if kind == "prose")
        spans = [
            m[2].strip()
            for para in re.split(r"\n\s*\n", text_)
            for m in re.finditer(r"(`+)(.+?)\1", para.replace("\n", " "))
        ]
        bash = [line for kind, t in chunk if kind in ("bash", "sh", "shell") for line in t.splitlines() if line.strip()]
        out.append((heading, spans, bash))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, spaces to '-', punctuation but '-' and '_' dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(page: pathlib.Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page.read_text()).splitlines():
        if m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            s = slug(m[1])
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return frozenset(out)


# -- links -------------------------------------------------------------------------------------


def link_problems(page: pathlib.Path, text: str) -> list[str]:
    problems = []
    for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose(text)):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{name(page)}: the link ({target}) leads to no file")
        elif ROOT not in dest.parents and dest != ROOT:
            problems.append(f"{name(page)}: the link ({target}) leaves the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{name(page)}: the link ({target}) names no heading of {name(dest)}")
    return problems


# -- commands ----------------------------------------------------------------------------------


@functools.cache
def parser_of(script: str):
    """The argparse parser of examples/X.py or benchmarks/X.py, from its build_parser()."""
    path = ROOT / script
    folder = str(path.parent if path.parent.name == "examples" else ROOT)
    module = path.stem if path.parent.name == "examples" else f"benchmarks.{path.stem}"
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(module).build_parser()
    finally:
        sys.path.remove(folder)


@functools.cache
def extras() -> frozenset[str]:
    """The extras pyproject.toml declares (read by hand: tomllib is Python 3.11's, tinynet runs on 3.10)."""
    table = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1].split("\n[")[0]
    return frozenset(re.findall(r"^([\w-]+)\s*=", table, flags=re.M))


def commands(span: str) -> list[list[str]]:
    """The simple commands of a shell line, each as its words, environment assignments dropped."""
    out = []
    for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", span):
        try:
            words = shlex.split(part, comments=True)
        except ValueError:
            continue  # not shell (a Python expression in backticks)
        while words and ENV.match(words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def script_of(words: list[str]) -> tuple[str, list[str]] | None:
    """(script, its arguments) for `python examples/X.py ...` or `examples/X.py --flag ...`."""
    if len(words) > 1 and words[0] in ("python", "python3") and SCRIPT.match(words[1]):
        return words[1], words[2:]
    if len(words) > 1 and SCRIPT.match(words[0]) and words[0].endswith(".py") and words[1].startswith("-"):
        return words[0], words[1:]  # a script named with its flags, "python" left out
    return None


def parse_problem(where: str, script: str, args: list[str]) -> str | None:
    if not (ROOT / script).is_file():
        return f"{where}: {script} does not exist"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser_of(script).parse_args(args)
    except SystemExit:
        return f"{where}: {script} refuses {shlex.join(args)!r}: {err.getvalue().strip().splitlines()[-1]}"
    return None


def command_problems(page: str, text: str) -> list[str]:
    problems = []
    page_scripts: set[str] = set()
    named = []
    for heading, spans, bash in sections(text):
        where = f"{page}, section {heading!r}" if heading else page
        scripts, flags = set(), []
        for span in [*spans, *bash]:
            if span in SKIP:
                continue
            for words in commands(span):
                if words[0].startswith("--"):
                    flags.extend(w for w in words if w.startswith("--"))
                elif found := script_of(words):
                    scripts.add(found[0])
                    problems.append(parse_problem(f"{where}: `{span}`", *found))
                elif words[0] in ("python", "python3") and words[1:2] == ["-m"] and words[2].startswith("tinynet"):
                    if importlib.util.find_spec(words[2]) is None:
                        problems.append(f"{where}: `{span}`: there is no module {words[2]}")
                    elif words[2] == "tinynet" and len(words) > 3:
                        problems.append(f"{where}: `{span}`: python -m tinynet takes no arguments")
                elif (
                    words[0] in ("python", "python3")
                    and words[1:2]
                    and words[1].startswith(("examples/", "benchmarks/"))
                ):
                    problems.append(f"{where}: `{span}` names no script (add it to SKIP, with the reason)")
                elif words[:3] == ["pip", "install", "-e"]:
                    for word in words[3:]:
                        if m := re.fullmatch(r"\.\[(.*)\]", word):
                            missing = set(m[1].split(",")) - extras()
                            if missing:
                                problems.append(f"{where}: `{span}`: no extra {', '.join(sorted(missing))}")
                elif words[0] == "pytest":
                    for word in words[1:]:
                        if word.startswith("tests/") and not (ROOT / word.split("::")[0]).exists():
                            problems.append(f"{where}: `{span}`: {word} does not exist")
                elif len(words) == 1 and SCRIPT.match(words[0]):
                    scripts.add(words[0])  # a script named alone: its flags may follow in the section
        page_scripts |= scripts
        named.append((where, scripts, flags))
    for where, scripts, flags in named:
        for flag in flags:
            flag = flag.split("=")[0]
            owners = scripts or page_scripts
            if not owners:
                problems.append(f"{where}: `{flag}` is named where no script is")
            elif not any(flag in parser_of(s)._option_string_actions for s in owners if (ROOT / s).is_file()):
                problems.append(f"{where}: no script of this section ({', '.join(sorted(owners))}) has {flag}")
    return [p for p in problems if p]


def path_problems(page: str, text: str) -> list[str]:
    problems = []
    for _, spans, _ in sections(text):
        for span in spans:
            if REPO_PATH.match(span):
                for path in braces(span):
                    if not (ROOT / path).exists():
                        problems.append(f"{page}: `{span}`: {path} does not exist")
    return problems


def braces(text: str) -> list[str]:
    """`a{,_b}.md` -> a.md, a_b.md (the shell's brace expansion, one level)."""
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    return [p for alt in m[1].split(",") for p in braces(text[: m.start()] + alt + text[m.end() :])]


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", LINKED, ids=name)
def test_every_link_leads_to_a_file_and_a_heading(page):
    assert link_problems(page, page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_command_parses_with_its_scripts_own_parser(page):
    assert command_problems(name(page), page.read_text()) == []


@pytest.mark.parametrize("page", LINKED, ids=name)
def test_every_path_in_backticks_exists(page):
    assert path_problems(name(page), page.read_text()) == []


def test_the_checks_find_what_they_look_for():
    """Enough commands and links are found that an empty match would not pass unseen."""
    text = (ROOT / "README.md").read_text()
    found = [script_of(w) for _, spans, bash in sections(text) for s in [*spans, *bash] for w in commands(s)]
    assert {f[0] for f in found if f} >= {f"examples/{n}.py" for n in ("mnist_mlp", "mnist_cnn", "digit_app")}
    assert len(re.findall(r"\]\(docs/", text)) >= 9
    assert "layer--forward--backward" in anchors(ROOT / "docs" / "backprop.md")


def test_a_flag_that_does_not_exist_fails():
    page = (
        "## Train\n\n```bash\npython examples/mnist_mlp.py --epochs 2 --no-such-flag\n```\n\n"
        "Then `python examples/mnist_cnn.py --batch-size 64 && python examples/trace_step.py --model rnn`,"
        " and `--epochz 3` for more.\n\n## Elsewhere\n\n`python benchmarks/bench_mnist_mlp.py --rounds 3`\n"
    )
    found = command_problems("made-up.md", text=page)
    assert len(found) == 3, found
    assert any("--no-such-flag" in f and "unrecognized arguments" in f for f in found), found
    assert any("--model rnn" in f and "invalid choice" in f for f in found), found
    assert any("has --epochz" in f and "mnist_cnn.py" in f for f in found), found
    assert command_problems("made-up.md", "`python examples/no_such_example.py`\n")


def test_a_broken_link_or_anchor_fails():
    page = ROOT / "docs" / "examples.md"  # a same-page #anchor is looked up in the page itself
    text = (
        "[a](../README.md#no-such-heading), [b](nowhere.md), [c](#what-they-measured), [d](../README.md#two-commands)"
    )
    found = link_problems(page, text + ", [e](#no-such-heading), [f](../..)\n")
    assert len(found) == 4, found
    assert "no heading of README.md" in found[0] and "no file" in found[1] and "no heading of docs" in found[2]
    assert "leaves the repository" in found[3]


def test_the_readme_is_one_screen_of_reading():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 180, f"README.md has {len(lines)} lines: move the details to a page in docs/"


def test_the_readme_keeps_its_two_commands_verbatim():
    bash = [
        line
        for lang, body in FENCE.findall((ROOT / "README.md").read_text())
        if lang == "bash"
        for line in body.splitlines()
    ]
    for command in TWO_COMMANDS:
        assert command in bash, f"the README lost a command a newcomer copies (.ci/run runs the second): {command}"
