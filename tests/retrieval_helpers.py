"""Helpers for retrieval tests: a hashing embedder, tiny qa task folders, hand-made PDFs."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np


class HashEmbedder:
    """Bag-of-words vectors from hashed words: similar wording, similar vectors; no model."""

    name = "hash-bow-64"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0  # texts embedded, to prove re-ingests skip unchanged documents

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


DOCS = {
    "returns.md": "# Returns\n\n## Return window\n\nYou can return any device within 45 days of "
    "delivery for a full refund.\n\n## Refunds\n\nRefunds reach your card within 2 business days.",
    "shipping.txt": "SHIPPING\n\nStandard shipping costs $5.99 and is free over $49.\n\nEXPRESS\n\n"
    "Express shipping takes 1 to 2 business days.",
    "hub.html": "<html><head><title>Hub | Acme</title><script>var x=1;</script></head><body>"
    "<nav><a href='/'>Home</a> Shop Help</nav><main><h1>Hub</h1><p>The hub backup battery "
    "lasts up to 6 hours &ndash; long enough for most power cuts.</p><table><tr><th>Item</th>"
    "<th>Value</th></tr><tr><td>Speaker</td><td>85 dB</td></tr></table></main>"
    "<footer>&copy; Acme cookies</footer></body></html>",
}
QUESTIONS = [
    ("q1", "How many days do I have to return a device?", "45 days", ["returns.md"]),
    ("q2", "How long does the hub backup battery last?", "up to 6 hours", ["hub.html"]),
    ("q3", "How much does standard shipping cost?", "$5.99", ["shipping.txt"]),
    ("q4", "How loud is the hub speaker?", "85 dB", ["hub.html"]),
    ("q5", "How fast are refunds?", "within 2 business days", ["returns.md"]),
    ("q6", "How long does express shipping take?", "1 to 2 business days", ["shipping.txt"]),
    ("q7", "Do you sell gift wrapping?", None, []),
    ("q8", "When is shipping free?", "over $49", ["shipping.txt"]),
]


def write_qa_task(
    root: Path,
    docs: dict[str, str] | None = None,
    questions=None,
    extra_yaml: str = "",
    eval_yaml: str = "",
) -> Path:
    """A small qa task with documents; every question in the hold-out unless `extra_yaml` splits."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs").mkdir(exist_ok=True)
    for name, text in (DOCS if docs is None else docs).items():
        (root / "docs" / name).write_text(text)
    with (root / "questions.jsonl").open("w") as f:
        for qid, q, a, ev in QUESTIONS if questions is None else questions:
            f.write(json.dumps({"id": qid, "q": q, "a": a, "evidence": ev}) + "\n")
    split = "" if "split:" in extra_yaml else "split: {train: 0.25, dev: 0.25, holdout: 0.5}\n"
    (root / "task.yaml").write_text(
        "name: tiny-qa\nkind: qa\ninstructions: Answer from the shop's help pages.\n"
        "data: {path: questions.jsonl, id: id, input: q, output: a, meta: [evidence]}\n"
        "documents: docs\n"
        + split
        + f"eval: {{bootstrap: 200, repeats: 0, min_holdout: 2{eval_yaml}}}\n"
        + extra_yaml
    )
    return root


def make_pdf(lines: list[str], password: str | None = None) -> bytes:
    """A one-page PDF with text lines (Helvetica), optionally password-protected (RC4)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({esc(x)}) Tj T*" for x in lines)
    content += " ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    if password is None:
        return out
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(out)))
    writer.encrypt(password, algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
