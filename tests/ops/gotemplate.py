"""A small renderer for the subset of Helm's Go templates our chart uses, so tests can render and check it.

Hand-written because the `helm` binary is not installable from the package registries CI can reach and
no Python package renders Helm charts. It supports exactly what `deploy/helm` uses — ``define``/
``include``, ``if``/``else``/``with``/``end``, trim markers, pipelines, parenthesised sub-expressions and
the functions below — and raises on anything else, so a template construct it does not know fails the
test instead of rendering wrongly. Semantics follow text/template and Helm: empty values are false,
missing keys render as empty, a pipeline's value is passed as the last argument of the next command.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"{{(-\s)?(.*?)(\s-)?}}", re.DOTALL)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|\||[^\s()|]+)')


class TemplateError(Exception):
    pass


@dataclass
class Node:
    kind: str  # text | action | if | with | define
    value: str = ""
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def _lex(source: str) -> list[tuple[str, str]]:
    """[(kind, value)]: ("text", s) and ("action", expr) with trim markers applied to neighbouring text."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(source):
        text = source[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = source[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def parse(source: str) -> list[Node]:
    root: list[Node] = []
    stack: list[tuple[Node | None, list[Node]]] = [(None, root)]
    for kind, value in _lex(source):
        target = stack[-1][1]
        if kind == "text":
            if value:
                target.append(Node("text", value))
            continue
        word, _, rest = value.partition(" ")
        if word in ("if", "with", "define"):
            node = Node(word, rest.strip())
            target.append(node)
            stack.append((node, node.body))
        elif word == "else":
            node = stack[-1][0]
            if node is None or node.kind == "define" or rest:
                raise TemplateError(f"unsupported else: {value!r}")
            stack[-1] = (node, node.orelse)
        elif word == "end":
            if len(stack) == 1:
                raise TemplateError("unbalanced end")
            stack.pop()
        elif word in ("range", "block", "template", "break", "continue") or word.startswith("/*"):
            raise TemplateError(f"unsupported action: {value!r}")
        else:
            target.append(Node("action", value))
    if len(stack) != 1:
        raise TemplateError("missing end")
    return root


def empty(v: Any) -> bool:
    return v is None or v is False or v == 0 or (hasattr(v, "__len__") and len(v) == 0)


def to_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _to_yaml(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n").removesuffix("\n...")


class Renderer:
    def __init__(self, defines: dict[str, list[Node]]) -> None:
        self.defines = defines
        self.funcs = {
            "include": lambda name, dot: self.render_nodes(self.defines[name], dot, dot),
            "toYaml": _to_yaml,
            "nindent": lambda n, s: "\n" + self._indent(n, s),
            "indent": lambda n, s: self._indent(n, s),
            "default": lambda d, v=None: d if empty(v) else v,
            "quote": lambda s: '"' + to_str(s).replace("\\", "\\\\").replace('"', '\\"') + '"',
            "trunc": lambda n, s: to_str(s)[:n],
            "trimSuffix": lambda suffix, s: to_str(s).removesuffix(suffix),
            "printf": lambda fmt, *args: fmt.replace("%s", "{}").format(*(to_str(a) for a in args)),
            "sha256sum": lambda s: hashlib.sha256(to_str(s).encode()).hexdigest(),
            "not": empty,
        }

    @staticmethod
    def _indent(n: int, s: Any) -> str:
        return "\n".join(" " * n + line for line in to_str(s).split("\n"))

    # -- expressions ----------------------------------------------------------------------------------
    def evaluate(self, expr: str, dot: Any, root: Any) -> Any:
        tokens = [t for t in _TOKEN.findall(expr) if t]
        value, pos = self._pipeline(tokens, 0, dot, root)
        if pos != len(tokens):
            raise TemplateError(f"trailing tokens in {expr!r}")
        return value

    def _pipeline(self, tokens: list[str], pos: int, dot: Any, root: Any) -> tuple[Any, int]:
        value: Any = _NOTHING
        while True:
            args: list[Any] = []
            head = tokens[pos]
            pos += 1
            while pos < len(tokens) and tokens[pos] not in ("|", ")"):
                arg, pos = self._operand(tokens, pos, dot, root)
                args.append(arg)
            if value is not _NOTHING:
                args.append(value)
            if head in self.funcs:
                value = self.funcs[head](*args)
            elif args:
                raise TemplateError(f"unknown function {head!r}")
            else:
                value, _ = self._operand([head], 0, dot, root)
            if pos < len(tokens) and tokens[pos] == "|":
                pos += 1
                continue
            return value, pos

    def _operand(self, tokens: list[str], pos: int, dot: Any, root: Any) -> tuple[Any, int]:
        tok = tokens[pos]
        if tok == "(":
            value, pos = self._pipeline(tokens, pos + 1, dot, root)
            if tokens[pos] != ")":
                raise TemplateError("missing )")
            return value, pos + 1
        if tok.startswith('"'):
            return bytes(tok[1:-1], "utf-8").decode("unicode_escape"), pos + 1
        if re.fullmatch(r"-?\d+", tok):
            return int(tok), pos + 1
        if tok in ("true", "false"):
            return tok == "true", pos + 1
        if tok == ".":
            return dot, pos + 1
        if tok.startswith(".") or tok.startswith("$"):
            base = root if tok.startswith("$") else dot
            value = base
            for part in tok.lstrip("$").split(".")[1:]:
                value = value.get(part) if isinstance(value, Mapping) else None
            return value, pos + 1
        if tok in self.funcs:
            return self.funcs[tok](), pos + 1
        raise TemplateError(f"unknown token {tok!r}")

    # -- nodes ----------------------------------------------------------------------------------------
    def render_nodes(self, nodes: list[Node], dot: Any, root: Any) -> str:
        out = []
        for n in nodes:
            if n.kind == "text":
                out.append(n.value)
            elif n.kind == "action":
                out.append(to_str(self.evaluate(n.value, dot, root)))
            elif n.kind == "if":
                branch = n.orelse if empty(self.evaluate(n.value, dot, root)) else n.body
                out.append(self.render_nodes(branch, dot, root))
            elif n.kind == "with":
                value = self.evaluate(n.value, dot, root)
                out.append(self.render_nodes(n.orelse, dot, root) if empty(value)
                           else self.render_nodes(n.body, value, root))
        return "".join(out)


_NOTHING = object()


def deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            merged[k] = deep_merge(base.get(k), v) if k in base else v
        return merged
    return copy.deepcopy(override)


def render_chart(chart_dir: Path, overrides: dict[str, Any] | None = None, *, release: str = "rel",
                 namespace: str = "push") -> dict[str, str]:
    """{template file name: rendered text} like ``helm template``, for every non-helper template."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values = deep_merge(yaml.safe_load((chart_dir / "values.yaml").read_text()), overrides or {})
    root = {
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    }
    templates = sorted((chart_dir / "templates").glob("*"))
    defines: dict[str, list[Node]] = {}
    parsed: dict[str, list[Node]] = {}
    for path in templates:
        nodes = parse(path.read_text())
        for node in nodes:
            if node.kind == "define":
                defines[node.value.strip('"')] = node.body
        if not path.name.startswith("_"):
            parsed[path.name] = [n for n in nodes if n.kind != "define"]
    renderer = Renderer(defines)
    return {name: renderer.render_nodes(nodes, root, root) for name, nodes in parsed.items()}
