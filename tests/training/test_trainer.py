"""The trainer: loss goes down, weights and per-turn masks reach the gradient, resume is exact, LoRA round-trips."""

from __future__ import annotations

import json

import pytest
import torch

from steca_data.core.schemas import ChatMessage
from steca_data.training.data import collate, encode_window, rows_to_examples
from steca_data.training.trainer import merge_lora, train, weighted_nll


def _grads(model, batch, weights, normalizer):
    model.zero_grad()
    ids, attn, mask, _ = collate(batch, 0)
    logits = model(input_ids=ids, attention_mask=attn).logits
    weighted_nll(logits, ids, mask, torch.tensor(weights), normalizer).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()


@pytest.fixture(scope="module")
def fresh_model(init_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(init_model_dir), dtype=torch.float32)


def test_loss_goes_down(trained_model_dir):
    log = json.loads((trained_model_dir / "train_log.json").read_text())
    losses = [h["loss"] for h in log["history"]]
    assert log["steps"] == 60
    assert losses[-1] < 0.6 * losses[0], losses
    assert (trained_model_dir / "loss.png").stat().st_size > 1000


def test_per_example_weights_scale_the_gradient(fresh_model, examples):
    a, b = examples[0], examples[1]
    norm = float(sum(a.loss_mask) + sum(b.loss_mask))
    g_a = _grads(fresh_model, [a], [1.0], norm)
    g_b = _grads(fresh_model, [b], [1.0], norm)
    g_2a = _grads(fresh_model, [a, b], [2.0, 0.0], norm)
    g_ab = _grads(fresh_model, [a, b], [1.0, 3.0], norm)
    torch.testing.assert_close(g_2a, 2 * g_a, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(g_ab, g_a + 3 * g_b, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(g_ab, g_a + g_b, rtol=1e-3)  # ignoring weights would give this


def test_turn_masks_select_tokens_and_gradient(fresh_model, tokenizer, tiny_rows):
    messages = [ChatMessage(**m) for m in tiny_rows[0]["messages"]]
    assistant = [i for i, m in enumerate(messages) if m.role == "assistant"]
    assert len(assistant) >= 2
    partial = [m.model_copy(update={"loss": i != assistant[0]}) for i, m in enumerate(messages)]
    ids, mask_all = encode_window(tokenizer, messages)
    ids2, mask_part = encode_window(tokenizer, partial)
    assert ids == ids2
    learnt = tokenizer.decode([t for t, m in zip(ids, mask_part, strict=True) if m])
    expected = "".join(messages[i].content + tokenizer.eos_token for i in assistant[1:])
    assert learnt == expected  # exactly the loss-bearing turns and their end-of-turn tokens
    assert sum(mask_part) < sum(mask_all)

    # the gradient of the partially masked row differs from the fully masked one and matches a manual mask
    row_all = dict(tiny_rows[0])
    row_part = {**row_all, "messages": [m.model_dump() for m in partial]}
    (ex_all,), _ = rows_to_examples([row_all], tokenizer, None, 768)
    (ex_part,), _ = rows_to_examples([row_part], tokenizer, None, 768)
    norm = 10.0
    g_all = _grads(fresh_model, [ex_all], [1.0], norm)
    g_part = _grads(fresh_model, [ex_part], [1.0], norm)
    assert not torch.allclose(g_all, g_part)
    manual = type(ex_all)(ex_all.input_ids, mask_part, 1.0, "manual")
    torch.testing.assert_close(_grads(fresh_model, [manual], [1.0], norm), g_part)


@pytest.mark.parametrize("lora", [False, True])
def test_resume_continues_exactly(tiny_recipe, init_model_dir, examples, tokenizer, tmp_path, lora):
    """A sharded (DCP) checkpoint at step 3, a crash at 4, ``resume`` ends on the straight run's weights; a LoRA
    checkpoint holds the adapter alone (the frozen base is the init model it restarts from)."""
    from steca_data.recipe.agent import LoRASpec

    update = {"max_steps": 6, "save_every": 3, "warmup_steps": 2}
    spec = tiny_recipe.sft.model_copy(
        update={**update, **({"lora": LoRASpec(r=4, alpha=8), "lr": 2e-2} if lora else {})}
    )
    scratch = tmp_path
    straight = train(spec, init_model_dir, examples[:24], scratch / "a", tokenizer, pad_id=0)

    def crash(step, total, loss):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(spec, init_model_dir, examples[:24], scratch / "b", tokenizer, progress=crash, pad_id=0)
    ckpt = scratch / "b" / "checkpoint"
    assert json.loads((ckpt / "state.json").read_text())["step"] == 3
    assert (ckpt / ".metadata").is_file() and (ckpt / "rng-0.pt").is_file()
    from torch.distributed.checkpoint import FileSystemReader

    stored = [k for k in FileSystemReader(ckpt).read_metadata().state_dict_metadata if k.startswith("model.")]
    assert any("embed_tokens" in k for k in stored) != lora  # a LoRA checkpoint: the adapter alone
    assert all("lora_" in k for k in stored) == lora and len(stored) > 4, [k for k in stored if "lora_" not in k]
    resumed = train(spec, init_model_dir, examples[:24], scratch / "b", tokenizer, resume=True, pad_id=0)
    assert straight.steps == resumed.steps == 6
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if lora else "model.safetensors"
    wa, wb = load_file(scratch / "a" / name), load_file(scratch / "b" / name)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6)


def test_lora_save_load_merge_round_trip(tiny_recipe, init_model_dir, examples, tokenizer, scratch):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    from steca_data.recipe.agent import LoRASpec

    spec = tiny_recipe.sft.model_copy(update={"max_steps": 4, "lora": LoRASpec(r=4, alpha=8), "lr": 2e-2})
    out = scratch / "lora"
    train(spec, init_model_dir, examples[:16], out, tokenizer, pad_id=tokenizer.pad_token_id)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()

    ids = torch.tensor([examples[0].input_ids[:64]])
    base = AutoModelForCausalLM.from_pretrained(str(init_model_dir)).eval()
    adapted = AutoPeftModelForCausalLM.from_pretrained(str(out)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(merge_lora(out, scratch / "merged"))).eval()
    with torch.no_grad():
        l_base, l_adapted, l_merged = (m(input_ids=ids).logits for m in (base, adapted, merged))
    assert not torch.allclose(l_base, l_adapted, atol=1e-4)  # the adapter learnt something
    torch.testing.assert_close(l_merged, l_adapted, rtol=1e-4, atol=1e-4)
