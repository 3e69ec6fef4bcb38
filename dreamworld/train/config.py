"""`TrainConfig`: how a world model is trained, one block per phase (tokenizer, termination CNN, dynamics, outcome
heads) beside the run's budget and the settings every phase shares; the model's shape lives in
`WorldModelConfig`. docs/experiments.md has the measurements behind the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from dreamworld.model.precision import Precision
from dreamworld.train.compiling import Compile

TINY_DYNAMICS_LR = 4e-3
"""peak learning rate of the tiny preset's 128-wide dynamics (docs/experiments.md, *The dynamics learned at a
quarter of the rate they could*); wider transformers take it scaled as 1 / width"""


@dataclass
class TokenizerPhase:
    """The tokenizer's phase, first: frames to codes and back."""

    share: float = 0.15
    """share of the budget"""
    batch_size: int = 16
    """frames a step"""
    lr: float = 2e-3
    """peak learning rate"""
    end_share: float = 0.05
    """share of batch frames drawn from the frames episodes ended on (few, and the termination CNN learns from the
    tokenizer's drawings of them)"""
    canvas_frames: int = 4096
    """frames drawn at random to start the tokenizer's canvas at their per-pixel median (the background); 0 starts
    it grey"""
    precision: Precision = "auto"
    """forward passes in bfloat16 autocast or float32, as --dynamics.precision"""


@dataclass
class TerminationPhase:
    """The termination CNN's phase, on the tokenizer's drawings of the data (models that read terminations off
    frames)."""

    share: float = 0.07
    """share of the budget (a model without the CNN gives it to the dynamics)"""
    batch_size: int = 128
    """steps (frame before, frame after) a batch"""
    lr: float = 1e-2
    """peak learning rate"""
    near: int = 8
    """batches draw as many rows from the steps up to this many before an ending as from the endings"""
    precision: Precision = "auto"
    """forward passes in bfloat16 autocast or float32, as --dynamics.precision"""


@dataclass
class DynamicsPhase:
    """The dynamics transformer's phase, on the frozen tokenizer's codes: the rest of the budget."""

    batch_size: int = 8
    """sequences of sequence_frames steps a batch"""
    sequence_frames: int | None = None
    """steps per training sequence (default: the model's context_frames; a step costs in proportion); attention
    inside a sequence reaches back context_frames frames, as in generation"""
    lr: float | None = None
    """peak learning rate (default: `peak_lr`, 4e-3 for the tiny preset's 128-wide transformer, scaled as 1 / width
    for wider ones)"""
    warmup_share: float = 0.05
    """the warmup ends after this share of the phase's budget at the latest (0: after --warmup-steps only)"""
    context_noise: float = 0.0
    """share of the context tokens moved to a neighbouring code (one FSQ digit one level off) in training, the
    targets left clean: the model learns to repair a dream's unlucky draws (data.near_miss_codes)"""
    precision: Precision = "auto"
    """forward passes in bfloat16 autocast (weights, optimiser and losses stay float32) or float32; auto takes
    bfloat16 where the device computes it natively (AVX512-BF16/AMX CPUs, Ampere+ GPUs)"""
    compile: Compile = "auto"
    """compile the training step with torch.compile (compiling.py; the first step compiles, ~30 s cold). auto: on
    for a phase of at least 2 minutes (or 1,000 steps) where a C++ compiler (CPU) or Triton (CUDA) is found; on:
    always (an error where it cannot); off: never"""

    def peak_lr(self, d_model: int) -> float:
        """The peak learning rate for a transformer `d_model` wide: `lr`, or TINY_DYNAMICS_LR * 128 / d_model."""
        return self.lr if self.lr is not None else TINY_DYNAMICS_LR * 128 / d_model


@dataclass
class OutcomePhase:
    """The outcome phase, last: the dynamics' reward head (and end head, with --termination tokens) retrained on
    the frozen transformer's states of every training frame, which it computes first."""

    share: float = 0.12
    """share of the budget; 0 skips the phase"""
    batch_size: int = 256
    """steps (a frame's dynamics state, the next frame's tokens, reward, termination) a batch"""
    event_share: float = 0.25
    """share of batch rows drawn from steps with a reward or a termination"""
    lr: float = 3e-4
    """peak learning rate"""


@dataclass
class TrainConfig:
    """How to train a world model: the budget, one block per phase, and what the phases share."""

    minutes: float | None = None
    """wall-clock budget (default 15 when neither minutes nor steps is given); encoding the data between phases
    comes out of the dynamics and outcome phases, loading the data before and the evaluation after come on top"""
    steps: int | None = None
    """optimisation steps of all phases together, split by their shares"""
    tokenizer: TokenizerPhase = field(default_factory=TokenizerPhase)
    termination: TerminationPhase = field(default_factory=TerminationPhase)
    dynamics: DynamicsPhase = field(default_factory=DynamicsPhase)
    outcome: OutcomePhase = field(default_factory=OutcomePhase)
    end_share: float = 0.1
    """share of dynamics windows placed on an episode's termination, and of termination batches drawn from them"""
    end_weight: float = 5.0
    """weight of terminal steps in the loss of the dynamics' end head"""
    reward_weight: float = 1.0
    """weight of the reward loss (dynamics and outcome phases)"""
    reward_event_weight: float = 5.0
    """weight of steps with a nonzero reward in the reward loss (they are rare)"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    warmup_steps: int = 100
    """linear warmup over this many steps of each phase, then cosine decay to 5% over the phase's budget"""
    grad_clip: float = 1.0
    """gradient-norm clip"""
    holdout: float = 0.1
    """share of episodes held out for evaluation (every k-th episode)"""
    checkpoint_seconds: float = 60.0
    """write a checkpoint at least this often"""
    eval_seconds: float = 300.0
    """score the held-out split (logged as eval/...) this often during the dynamics phase, but not in its last
    eval_seconds: training ends with that score anyway"""
    eval_samples: int = 64
    """held-out rollouts scored at the end of training (eval/... metrics)"""
    log_every: int = 25
    """log training metrics every this many steps"""
    seed: int = 0
    """seed of initialisation and sampling"""
    device: str = "cpu"
    """cpu or cuda (under torchrun each rank takes cuda:LOCAL_RANK)"""
