"""Prompt templates from task files, in the Jinja2 sandbox: compiled, checked at load, trial-rendered.

Task files are shared like any config, so config never runs code: a template can read its
variables but never reach Python internals (`cycler.__init__.__globals__.os`). `load_task`
checks every extra template here before any run exists; `ladder.rungs.prompts` renders them.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from ladder.errors import TaskError

_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False
)


def compile_template(source: str, name: str = "template") -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TaskError(
            f"prompt template {name!r}, line {exc.lineno}: {exc.message}.",
            fix="check the Jinja2 syntax ({{ input }}, {% for d in demos %}...).",
        ) from None


def uses_demos(source: str, name: str = "template") -> bool:
    try:
        parsed = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        compile_template(source, name)  # raises the TaskError naming the template and line
        raise
    return "demos" in meta.find_undeclared_variables(parsed)


def check_template(source: str, name: str) -> None:
    """Refuse, at task load, a template that does not parse or reaches what the sandbox forbids."""
    compile_template(source, name)
    parsed = _ENV.parse(source)
    attrs = [n.attr for n in parsed.find_all(nodes.Getattr)]
    attrs += [
        n.arg.value
        for n in parsed.find_all(nodes.Getitem)
        if isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str)
    ]
    private = next((a for a in attrs if a.startswith("_")), None)
    if private is not None:
        raise TaskError(
            f"prompt template {name!r} reaches the attribute {private!r}, which the template sandbox refuses.",
            fix="use only the template variables (input, demos, labels, instructions, ...), not Python internals.",
        )
    _trial_render(source, name)


_TRIAL = {
    "instructions": "Sort it.",
    "labels": ["a", "b"],
    "label_block": "Labels: a, b",
    "answer_format": "Answer with one label.",
    "demos": [{"input": "x", "output": "a"}],
    "input": "y",
    "input_name": "Input",
    "output_name": "Answer",
}


def _trial_render(source: str, name: str) -> None:
    """Render once on stand-in values, so an unknown variable or a refused call fails at load."""
    render(compile_template(source, name), name, _TRIAL)


def render(template: jinja2.Template, name: str, variables: dict[str, Any]) -> str:
    """Render a compiled template; what the template gets wrong is a TaskError naming it."""
    known = ", ".join(variables)
    try:
        return template.render(**variables)
    except jinja2.UndefinedError as exc:
        raise TaskError(
            f"prompt template {name!r} uses an unknown variable: {exc.message}.",
            fix=f"use only: {known}.",
        ) from None
    except SecurityError as exc:
        raise TaskError(
            f"prompt template {name!r} was refused by the sandbox: {exc}.",
            fix=f"use only the template variables ({known}), not Python internals.",
        ) from None
    except Exception as exc:
        raise TaskError(
            f"prompt template {name!r} fails to render: {type(exc).__name__}: {exc}.",
            fix=f"check the expressions in the template against its variables: {known}.",
        ) from None
