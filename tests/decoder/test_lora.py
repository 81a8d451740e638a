"""decoder/lora.py: the shared-prefix and answer-only losses equal the plain forward's."""

import pytest
import torch


def test_shared_head_leaves_each_row_a_prompt_token():
    from decoder.lora import MIN_SHARED_PREFIX, shared_head

    head = list(range(100))
    assert shared_head([head + [1, 2], head + [3], head + [4, 5, 6]]) == 100
    assert shared_head([head, head + [7]]) == 99  # one row is all head: keep its last token out of it
    assert shared_head([head[: MIN_SHARED_PREFIX - 1] + [1], head[: MIN_SHARED_PREFIX - 1] + [2]]) == 0
    assert shared_head([head + [1]]) == 0  # one row: nothing to share


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-3) -> bool:
    """Equal up to float32 rounding, measured over the whole tensor: the two computations sum in different orders
    (and with other kernels on other CPUs, or another thread count inside the full suite), so single entries near
    zero can differ by more than 1e-3 of themselves (3.1980e-05 vs 3.1928e-05 on one Intel Xeon) while the tensor
    agrees to 1e-5 of its norm."""
    return float(torch.linalg.vector_norm(a - b)) <= rel * float(torch.linalg.vector_norm(b)) + 1e-12


def test_shared_prefix_loss_equals_the_plain_forward(model_dir):
    """Training batches whose prompts share a head compute it once (decoder.lora.shared_prefix_loss), and the
    vocabulary projection runs only on answer tokens (decoder.lora.answer_loss): the loss and every LoRA gradient
    equal the plain batched forward's (float32), rows of different lengths included."""
    from decoder.lora import answer_loss, common_prefix_len, lora_model, pad_right, shared_prefix_loss

    _, model = lora_model(model_dir, 4, 8)
    model = model.float()
    g = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            # a non-zero adapter, so that its gradients are non-trivial
            p.data = torch.randn(p.shape, generator=g) * 0.02
    head = torch.randint(100, 5000, (70,), generator=g).tolist()
    prompts = [head + torch.randint(100, 5000, (n,), generator=g).tolist() for n in (3, 9, 5)]
    answers = [torch.randint(100, 5000, (n,), generator=g).tolist() for n in (6, 2, 11)]
    seqs = [torch.tensor(p + a) for p, a in zip(prompts, answers)]
    labels = [[-100] * len(p) + a for p, a in zip(prompts, answers)]
    x, mask, y = pad_right(seqs, labels)
    # padded past the longest row, to a multiple of 64 positions
    assert x.shape[1] % 64 == 0 and int(mask.sum()) == sum(len(s) for s in seqs)
    assert common_prefix_len(prompts) >= 70
    batch = {"input_ids": x, "attention_mask": mask, "labels": y}

    def run(loss_fn):
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, g_plain = run(lambda: model(**batch).loss)
    shared, g_shared = run(lambda: shared_prefix_loss(model, {**batch, "prefix_len": 70}))
    answers_only, g_answers = run(lambda: answer_loss(model, batch))
    assert abs(plain - answers_only) < 1e-4 * abs(plain)
    assert g_answers.keys() == g_plain.keys()
    for name in g_plain:
        assert _close(g_answers[name], g_plain[name]), name
    with pytest.raises(ValueError):  # a head that is not shared, or that carries labels, is refused
        shared_prefix_loss(model, {**batch, "prefix_len": 74})
    assert abs(plain - shared) < 1e-4 * abs(plain)
    assert g_plain.keys() == g_shared.keys() and len(g_plain) > 0
    for name in g_plain:
        assert _close(g_shared[name], g_plain[name]), name
    other = torch.where(y == -100, y, (y + 1) % 5000)  # other answer tokens: the loss must change
    wrong, _ = run(lambda: shared_prefix_loss(model, {**batch, "prefix_len": 70, "labels": other}))
    assert abs(wrong - plain) > 1e-2  # the comparison can fail
    wrong, _ = run(lambda: answer_loss(model, {**batch, "labels": other}))
    assert abs(wrong - plain) > 1e-2
