"""`TrainConfig`: how a world model is trained (budgets, batch sizes, learning rates per phase); the model's shape
lives in `WorldModelConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from dreamworld.model.precision import Precision
from dreamworld.train.compiling import Compile


@dataclass
class TrainConfig:
    """How to train (the model's shape lives in WorldModelConfig)."""

    minutes: float | None = None
    """wall-clock budget for training (default 15 when neither minutes nor steps is given); what runs between the
    phases (encoding the data, the outcome phase's states) comes out of the dynamics and outcome phases, which end
    on the run's clock; loading the data before and the evaluation after come on top"""
    steps: int | None = None
    """optimisation steps for all phases together (split by tokenizer_share, termination_share, outcome_share)"""
    tokenizer_share: float = 0.15
    """share of the budget spent on the tokenizer (docs/experiments.md: why the dynamics get most of it)"""
    refiner_share: float = 0.1
    """share of the budget spent on the refiner (models without one give it to the dynamics)"""
    refiner_runs: int = 8
    """refiner batch: runs of refiner_run consecutive frames"""
    refiner_run: int = 4
    """frames per refiner run, each drawn over the refiner's drawing of the one before (gradients flow through)"""
    refiner_chains: int = 4
    """of the refiner_runs, how many continue chains of the refiner's own drawings across batches (refiner.py)"""
    refiner_precision: Precision = "auto"
    """the refiner's convolutions in bfloat16 autocast or float32 (as --precision), in its phase and when it draws
    the frames the termination CNN learns from (its softmax and mix stay float32)"""
    refiner_lr: float = 2e-3
    """refiner peak learning rate"""
    refiner_logits_lr_scale: float = 0.1
    """the refiner's last convolution (the logits of its mixing weights) learns at this multiple of refiner_lr, so
    its softmax does not saturate on the fresh drawing early"""
    termination_share: float = 0.07
    """share of the budget spent on the termination model (models without one give it to the dynamics)"""
    termination_batch_size: int = 128
    """termination batch: steps (frame before, frame after)"""
    termination_lr: float = 1e-2
    """termination-model peak learning rate (docs/world_model_log.md: 1e-2 against 1e-3)"""
    termination_near: int = 8
    """termination batches draw as many rows from the steps up to this many before an ending as from the endings"""
    termination_shift: int = 0
    """termination batches move the play area (below --termination-hud-rows) by up to this many rows and 2 columns,
    the frames before and after alike, so endings that depend on where things are relative to each other are
    learned at every height (termination.Augment; 0: off)"""
    termination_flip: bool = False
    """termination batches turn the play area upside down in half their rows (games whose rules are symmetric top
    to bottom, as Cave's)"""
    termination_hud_rows: int = 7
    """rows at the top of the frame that the termination batches leave in place (the built-in games' score bar)"""
    termination_precision: Precision = "auto"
    """the termination CNN's forward passes in bfloat16 autocast or float32 (as --precision)"""
    termination_real_share: float = 0.0
    """share of termination batch rows that show the real frames instead of the model's drawings of them"""
    termination_reward_share: float = 0.25
    """share of termination batch rows drawn from steps with a reward, for a termination model that reads rewards
    too (dreamworld train --rewards frames)"""
    outcome_share: float = 0.12
    """share of the budget spent retraining the reward head (and the end head, with --termination tokens) on the
    frozen dynamics' states after the dynamics phase (outcome.py); 0 skips it. Computing the states of every
    training frame comes out of it. Skipped, its share going to the dynamics, when the termination CNN reads the
    rewards too (--rewards frames): nothing reads the dynamics' reward head then"""
    outcome_batch_size: int = 256
    """outcome batch: steps (the dynamics' state of a frame, the next frame's tokens, reward, termination)"""
    outcome_event_share: float = 0.25
    """share of outcome batches drawn from steps with a reward or a termination"""
    outcome_lr: float = 3e-4
    """outcome-phase peak learning rate"""
    batch_size: int = 8
    """dynamics batch: sequences of sequence_frames steps (small, as a CPU's time budget favours more, smaller
    steps, docs/experiments.md; GPU runs pass larger ones, e.g. --batch-size 64)"""
    sequence_frames: int | None = None
    """steps per dynamics training sequence (default: the model's context_frames; a step costs in proportion, so
    shorter sequences buy more steps); attention inside a sequence reaches back context_frames frames, as in
    generation"""
    tokenizer_batch_size: int = 16
    """tokenizer batch: frames (benchmarks/tokenizer_phase.py compares sizes)"""
    tokenizer_end_share: float = 0.05
    """share of tokenizer batch frames drawn from the frames episodes ended on (they are few, and a tokenizer that
    seldom sees them draws them wrong, which hides endings from the termination CNN)"""
    canvas_frames: int = 4096
    """frames drawn at random to start the tokenizer's canvas at their per-pixel median (the background); 0
    starts it grey"""
    lr: float = 1e-3
    """dynamics peak learning rate"""
    tokenizer_lr: float = 2e-3
    """tokenizer peak learning rate"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    warmup_steps: int = 100
    """linear warmup over this many steps of each phase (the dynamics: or dynamics_warmup_share of their budget, if
    that ends sooner), then cosine decay to 5% over the budget"""
    dynamics_warmup_share: float = 0.05
    """the dynamics' warmup ends after this share of their budget at the latest (0: after warmup_steps only), so a
    slow device's few steps are not mostly warmup"""
    grad_clip: float = 1.0
    """gradient-norm clip"""
    holdout: float = 0.1
    """share of episodes held out for evaluation (every k-th episode)"""
    end_share: float = 0.1
    """share of dynamics windows placed on an episode's termination, and of termination batches drawn from them"""
    end_weight: float = 5.0
    """weight of terminal steps in the termination loss (of the dynamics' outcome head)"""
    reward_weight: float = 1.0
    """weight of the reward loss"""
    reward_event_weight: float = 5.0
    """weight of steps with a nonzero reward in the reward loss (they are rare)"""
    checkpoint_seconds: float = 60.0
    """write a checkpoint at least this often"""
    eval_seconds: float = 300.0
    """score the held-out split (logged as eval/...) this often during the dynamics phase, but not in the last
    eval_seconds of a timed one: training ends with that score anyway, and the time goes to the dynamics"""
    eval_samples: int = 64
    """held-out rollouts scored at the end of training (eval/... metrics)"""
    log_every: int = 25
    """log training metrics every this many steps"""
    seed: int = 0
    """seed of initialisation and sampling"""
    device: str = "cpu"
    """cpu or cuda (under torchrun each rank takes cuda:LOCAL_RANK)"""
    precision: Precision = "auto"
    """dynamics forward passes in bfloat16 autocast (weights, optimiser and losses stay float32) or float32; auto
    takes bfloat16 where the device computes it natively (AVX512-BF16/AMX CPUs, Ampere+ GPUs)"""
    tokenizer_precision: Precision = "auto"
    """the same for the tokenizer"""
    compile: Compile = "auto"
    """compile the dynamics' training step with torch.compile (compiling.py; the first step compiles, ~30 s cold).
    auto: on for a dynamics phase of at least 2 minutes (or 1,000 steps) where a C++ compiler (CPU) or Triton
    (CUDA) is found; on: always (an error where it cannot); off: never"""
