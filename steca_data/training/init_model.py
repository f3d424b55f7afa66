"""``init-model``: a byte-level BPE tokenizer trained on the built corpus and a tiny Llama from a config.

Nothing is downloaded: the tokenizer learns its merges from the expert conversations, gets the chat
special tokens and a chat template whose ``{% generation %}`` block marks assistant spans, and the model
is a freshly initialised ``LlamaForCausalLM`` sized by the recipe's ``model`` section.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from steca_data.core.outputs import mark
from steca_data.recipe.agent import ModelSpec

BOS, END, PAD = "<s>", "<|end|>", "<pad>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SPECIAL_TOKENS = [PAD, BOS, END, *ROLE_TOKENS]

# Prefix-stable (rendering messages[:i] is a prefix of rendering messages[:i+1]); the assistant span is
# the content plus the end-of-turn token, which is what generation stops on.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE (lossless on any text, unseen object names included) wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=ROLE_TOKENS,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_model(spec: ModelSpec, tokenizer):
    """A freshly initialised Llama-style causal LM sized by ``spec``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads or spec.num_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=spec.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def corpus_texts(dataset_dir: Path, keys: list[str]) -> list[str]:
    """Every message of the built rows (system prompts once), as the tokenizer's training corpus."""
    from datasets import load_from_disk

    dd = load_from_disk(str(dataset_dir))
    texts, seen_system = [], set()
    for key in keys:
        if key not in dd:
            continue
        for row in dd[key]:
            for m in row["messages"]:
                if m["role"] == "system":
                    if m["content"] in seen_system:
                        continue
                    seen_system.add(m["content"])
                texts.append(m["content"])
    return texts


def init_model(spec: ModelSpec, texts: list[str], out: Path) -> tuple[int, int]:
    """Train the tokenizer, build the model, save both to ``out``; returns (vocab size, parameters)."""
    if not texts:
        raise ValueError("the corpus is empty: build the recipe's expert dataset first (steca-data build)")
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    model = build_model(spec, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    mark(out, "model")
    tokenizer.save_pretrained(str(out))
    model.save_pretrained(str(out))
    return len(tokenizer), sum(p.numel() for p in model.parameters())
