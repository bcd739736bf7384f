"""Prompt templates (Jinja2) and the pieces they are built from.

Variables a template sees: `instructions`, `labels`, `label_block` (labels with their
descriptions), `answer_format`, `demos` (list of {input, output}), `input`, `input_name`,
`output_name`. Templates end with the answer cue (`Label:`), and answers start with a space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ladder.sandbox import compile_template, render
from ladder.task import Task

BASE = """\
{%- if instructions %}{{ instructions }}

{% endif -%}
{%- if label_block %}{{ label_block }}

{% endif -%}
{%- if answer_format %}{{ answer_format }}

{% endif -%}
{%- for d in demos %}{{ input_name }}:
{{ d.input }}
{{ output_name }}: {{ d.output }}

{% endfor -%}
{{ input_name }}:
{{ input }}
{{ output_name }}:"""

COT = (
    BASE.rsplit("\n", 1)[0]
    + """
Reasoning (think step by step, then stop):"""
)

BUILTIN_TEMPLATES = {"base": BASE, "cot": COT}


@dataclass(frozen=True)
class PromptParts:
    """What a variant shows the model, apart from the input and the demonstrations."""

    instructions: bool = True
    label_block: bool = True
    answer_format: bool = True


def truncate(text: str, max_chars: int) -> str:
    """Cut long inputs at a word boundary, marking the cut."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut + " …[truncated]"


def label_block(task: Task) -> str:
    desc = task.label_descriptions
    if not task.labels:
        return ""
    if desc:
        return "Labels:\n" + "\n".join(
            f"- {lab}: {desc[lab]}" if desc.get(lab) else f"- {lab}" for lab in task.labels
        )
    return "Labels: " + ", ".join(task.labels)


class PromptBuilder:
    """Renders prompts for one task, template and set of parts."""

    def __init__(
        self,
        task: Task,
        template: str = BASE,
        parts: PromptParts = PromptParts(),
        name: str = "base",
    ):

        self.task = task
        self.kind = task.kind_impl
        self.template = compile_template(template, name)
        self.name = name
        self.parts = parts
        p = task.spec.prompt
        self.input_name, self.output_name = p.input_name, p.output_name
        self.max_chars = task.spec.eval.max_input_chars

    def render(
        self, text: str, demos: Sequence[tuple[str, Any]] = (), max_demo_chars: int = 500
    ) -> str:
        t = self.task
        ctx = {
            "instructions": t.spec.instructions.strip() if self.parts.instructions else "",
            "labels": t.labels,
            "label_block": label_block(t) if self.parts.label_block else "",
            "answer_format": self.kind.answer_format(t) if self.parts.answer_format else "",
            "demos": [
                {
                    "input": truncate(d_in, max_demo_chars),
                    "output": self.kind.render_output(d_out, t),
                }
                for d_in, d_out in demos
            ],
            "input": truncate(text, self.max_chars),
            "input_name": self.input_name,
            "output_name": self.output_name,
        }
        return render(self.template, self.name, ctx)
