"""A tiny, randomly initialised Gemma 3 with a word-level tokenizer: real code paths in seconds."""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "to",
    "of",
    "in",
    "on",
    "for",
    "with",
    "is",
    "are",
    "was",
    "be",
    "this",
    "that",
    "it",
    "you",
    "we",
    "they",
    "i",
    "my",
    "your",
    "our",
    "email",
    "label",
    "category",
    "answer",
    "input",
    "output",
    "spam",
    "work",
    "personal",
    "marketing",
    "automated",
    "billing",
    "technical",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "hello",
    "world",
    "meeting",
    "invoice",
    "dinner",
    "lottery",
    "password",
    "order",
    "refund",
    "hub",
    "doorbell",
    "camera",
    "plug",
    "sensor",
    "please",
    "thanks",
    "today",
    "tomorrow",
    "friday",
    "monday",
    "urgent",
    "quick",
    "review",
    "contract",
    "budget",
    "family",
    "friend",
    "{",
    "}",
    '"',
    ":",
    ",",
    ".",
    "!",
    "?",
    "-",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "null",
    "true",
    "false",
    "name",
    "id",
    "category_id",
]


def build_tiny_model(
    folder: Path, *, sliding_window: int = 16, layers: int = 3, seed: int = 0
) -> Path:
    """Write a tiny Gemma 3 (causal LM) and its tokenizer to `folder`; return the folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit()])
    tk.decoder = decoders.WordPiece(prefix="##")  # joins word tokens with spaces
    from tokenizers import processors

    tk.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )
    layer_types = ["sliding_attention" if (i + 1) % 3 else "full_attention" for i in range(layers)]
    cfg = Gemma3TextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=sliding_window,
        layer_types=layer_types,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(cfg)
    with (
        torch.no_grad()
    ):  # larger random weights: a peaked, input-dependent next-token distribution
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
