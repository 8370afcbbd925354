"""src/align/rollout.py: group sampling from a shared prompt state draws, row by row, what generating each
completion alone with the same seed draws; rows stop early and leave the batch; prompts of any lengths;
padded() lines up inputs, targets and the completion mask; bad arguments are one line. Every registered
family, tiny random models with a small vocabulary (so that sampling is far from degenerate and the stop
token comes up), float64."""

import pytest
import torch

from src.align import Rollouts, sample_groups
from src.align.rollout import concat_states
from src.infer import Sampler, generate_tokens
from src.model import RWKVState, families, init_model
from src.peft import PeftConfig, apply_peft

FAMILIES = [f.name for f in families()]
PROMPTS = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3, 5, 8, 9, 7], [2]]        # three lengths
G = 3
SEEDS = [1000 + i for i in range(len(PROMPTS) * G)]


def tiny(family: str, head_size: int = 32, n_embd: int = 64):
    return next(f for f in families() if f.name == family).config_class(
        n_layer=2, n_embd=n_embd, head_size=head_size, vocab_size=16)


@pytest.fixture(scope="module", params=[pytest.param(f, marks=() if f == FAMILIES[-1] else pytest.mark.slow)
                                        for f in FAMILIES])
def model(request):
    return init_model(tiny(request.param), seed=5, nonzero=True).double().eval()


def alone(model, prompt, seed, max_new_tokens, stop_token=0, state=None, temperature=1.0, top_p=1.0, top_k=0):
    """The completion generate_tokens draws for one row on its own."""
    return list(generate_tokens(model, prompt, Sampler(temperature, top_p, top_k, seed), max_new_tokens,
                                state=state, stop_token=stop_token))


def test_group_sampling_equals_sampling_each_completion_alone(model):
    out = sample_groups(model, PROMPTS, G, 12, seeds=SEEDS, stop_tokens=(0,))
    assert out.prompt_lengths == [5, 9, 1] and len(out.completions) == len(PROMPTS) * G == len(out.stopped)
    for i, seed in enumerate(SEEDS):
        assert out.completions[i] == alone(model, PROMPTS[i // G], seed, 12), f"row {i}"
        assert out.stopped[i] == (out.completions[i][-1] == 0)
        assert out.stopped[i] or len(out.completions[i]) == 12
    lengths = [len(c) for c in out.completions]
    assert min(lengths) < 12 and max(lengths) == 12                     # some rows stopped early, some ran out
    assert len({tuple(c) for c in out.completions}) == len(SEEDS)       # the seeds draw different completions


def test_several_stop_tokens_and_filters(model):
    """Any of stop_tokens ends a row (kept in it); top-k, top-p and temperature as the Sampler applies them."""
    out = sample_groups(model, PROMPTS, G, 10, temperature=0.8, top_p=0.9, top_k=6, seeds=SEEDS, stop_tokens=(3, 7))
    for i, seed in enumerate(SEEDS):
        free = alone(model, PROMPTS[i // G], seed, 10, stop_token=None, temperature=0.8, top_p=0.9, top_k=6)
        end = next((j + 1 for j, t in enumerate(free) if t in (3, 7)), len(free))
        assert out.completions[i] == free[:end] and out.stopped[i] == (end < len(free) or free[-1] in (3, 7))
    assert any(out.stopped) and not all(out.stopped)


def test_no_stop_tokens_runs_every_row_to_the_end(model):
    out = sample_groups(model, PROMPTS[:1], 2, 6, seeds=[1, 2], stop_tokens=())
    assert [len(c) for c in out.completions] == [6, 6] and out.stopped == [False, False]
    assert out.completions[0] == alone(model, PROMPTS[0], 1, 6, stop_token=None)


def test_finished_rows_leave_the_batch(model):
    """Each step's forward carries only the rows still running; the prompts are read one at a time."""
    shapes = []

    class Recording(torch.nn.Module):               # any module with the model's call works
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, idx, state=None, return_state=False):
            shapes.append(tuple(idx.shape))
            return self.inner(idx, state=state, return_state=return_state)

    out = sample_groups(Recording(model), PROMPTS, G, 12, seeds=SEEDS)
    assert shapes[:3] == [(1, 5), (1, 9), (1, 1)]
    steps = [b for b, t in shapes[3:]]
    assert steps[0] == len(SEEDS) and steps == sorted(steps, reverse=True) and steps[-1] < steps[0]
    # a row's tokens are read back while it runs: every token but the last one drawn
    assert sum(steps) == sum(len(c) - 1 for c in out.completions)


def test_a_starting_state_for_every_prompt_or_each_its_own(model):
    g = torch.Generator().manual_seed(0)
    one = RWKVState.from_tensors([torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.5 for t in
                                  RWKVState.zeros(model.config, 1, dtype=torch.float64).tensors()], model.config.family)
    out = sample_groups(model, PROMPTS, G, 8, seeds=SEEDS, state=one)
    for i, seed in enumerate(SEEDS):
        assert out.completions[i] == alone(model, PROMPTS[i // G], seed, 8, state=one.clone())
    own = concat_states([one, RWKVState.zeros(model.config, 1, dtype=torch.float64), one.clone()])
    out = sample_groups(model, PROMPTS, G, 8, seeds=SEEDS, state=own)
    for i, seed in enumerate(SEEDS):
        row = RWKVState.from_tensors([t[i // G:i // G + 1] for t in own.tensors()], own.family)
        assert out.completions[i] == alone(model, PROMPTS[i // G], seed, 8, state=row)
    assert out.completions != sample_groups(model, PROMPTS, G, 8, seeds=SEEDS).completions


@pytest.mark.parametrize("family", FAMILIES)
def test_an_adapted_model_in_train_mode_samples_in_eval_mode_and_keeps_its_modes(family):
    model = apply_peft(init_model(tiny(family), seed=6, nonzero=True).double(), PeftConfig("bone", 8), verbose=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    model.train()
    model.blocks[0].eval()                          # a module in its own mode stays in it
    modes = {name: m.training for name, m in model.named_modules()}
    out = sample_groups(model, PROMPTS[:2], 2, 8, seeds=SEEDS[:4])
    assert {name: m.training for name, m in model.named_modules()} == modes
    model.eval()
    assert [alone(model, PROMPTS[i // 2], SEEDS[i], 8) for i in range(4)] == out.completions


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16(family):
    """In bf16 a batched step may round differently from a batch of one; the first token comes from the
    prompt's own pass and is the same."""
    model = init_model(tiny(family), seed=5, nonzero=True).to(torch.bfloat16)
    out = sample_groups(model, PROMPTS, G, 6, seeds=SEEDS)
    assert [c[0] for c in out.completions] == [alone(model, PROMPTS[i // G], s, 1)[0] for i, s in enumerate(SEEDS)]
    assert all(1 <= len(c) <= 6 and all(0 <= t < 16 for t in c) for c in out.completions)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_on_a_gpu(family, dtype):
    """fp32 on the GPU: the same tokens as alone; bf16 (the WKV kernel): the same first tokens."""
    model = init_model(tiny(family, head_size=64, n_embd=128), seed=5, nonzero=True).to("cuda", dtype)
    out = sample_groups(model, PROMPTS, G, 8, seeds=SEEDS)
    expected = [alone(model, PROMPTS[i // G], s, 8) for i, s in enumerate(SEEDS)]
    if dtype == torch.float32:
        assert out.completions == expected
    else:
        assert [c[0] for c in out.completions] == [e[0] for e in expected]


def test_padded_lines_up_inputs_targets_and_the_completion_mask():
    rollouts = Rollouts([2, 3], [[7, 0], [8, 8, 8], [9], [5, 6]], [True, False, False, False])   # P = 2, G = 2
    x, y, mask = rollouts.padded([[1, 2], [3, 4, 5]], pad=-1)
    assert x.tolist() == [[1, 2, 7, -1], [1, 2, 8, 8], [3, 4, 5, -1], [3, 4, 5, 5]]
    assert y.tolist() == [[2, 7, 0, -1], [2, 8, 8, 8], [4, 5, 9, -1], [4, 5, 5, 6]]
    assert mask.tolist() == [[0, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 1, 1]]
    assert x.dtype == y.dtype == torch.long and mask.dtype == torch.float32
    with pytest.raises(ValueError, match=r"the prompts' lengths \[2, 2\] are not those sampled from, \[2, 3\]"):
        rollouts.padded([[1, 2], [3, 4]])


def test_padded_masks_exactly_the_sampled_tokens(model):
    out = sample_groups(model, PROMPTS, G, 12, seeds=SEEDS)
    x, y, mask = out.padded(PROMPTS)
    assert x.shape == y.shape == mask.shape == (len(SEEDS), max(9 + len(c) for c in out.completions[G:2 * G]) - 1)
    for i, completion in enumerate(out.completions):
        assert y[i][mask[i] == 1].tolist() == completion
        assert x[i, :len(PROMPTS[i // G])].tolist() == PROMPTS[i // G]


@pytest.mark.parametrize("change, message", [
    ({"group_size": 0}, "group_size must be a whole number >= 1, got 0"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a whole number >= 1, got 0"),
    ({"seeds": [1, 2, 3]}, r"seeds must hold one seed per completion, 3 prompts x 2 = 6, got 3"),
    ({"prompts": [[1, 2], [], [3]]}, "prompt 1 holds no tokens"),
    ({"prompts": []}, "prompts must be a non-empty list of token lists"),
    ({"prompts": [[1, 16]]}, r"prompt 0 holds 16, not a token id in \[0, 16\)"),
    ({"stop_tokens": ("x",)}, "stop_tokens must be token ids"),
    ({"state": "zeros"}, "state must be an RWKVState of batch size 1 .* or 3 .*, got str"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
])
def test_bad_arguments_are_one_line(model, change, message):
    args = {"prompts": PROMPTS, "group_size": 2, "max_new_tokens": 4, **change}
    with pytest.raises(ValueError, match=message) as caught:
        sample_groups(model, **args)
    assert "\n" not in str(caught.value)
