"""A GPT with nanoGPT's architecture and initialisation, written for benchmarking.

Pre-LayerNorm transformer blocks, causal self-attention through
`scaled_dot_product_attention`, a 4x GELU MLP, learned position embeddings, and the LM head
tied to the token embedding. Initial weights are drawn from an explicit CPU generator, so
the same seed gives the same weights whatever device the model is later moved to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = False

    @classmethod
    def from_scenario(cls, scenario, vocab_size: int) -> GPTConfig:
        """The model a scenario describes (its [model] table) over a dataset's vocabulary."""
        m = scenario.model
        return cls(vocab_size, m.block_size, m.n_layer, m.n_head, m.n_embd, m.dropout, m.bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, init_generator: torch.Generator):
        super().__init__()
        self.config = cfg
        # torch's default initialisers draw from the process's random stream; the weights
        # come from init_generator alone, so that stream is handed back as it was
        with torch.random.fork_rng(devices=[]):
            self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
            self.drop = nn.Dropout(cfg.dropout)
            self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
            self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: one (V, C) matrix
        self._init_weights(init_generator)

    @torch.no_grad()
    def _init_weights(self, gen: torch.Generator) -> None:
        """nanoGPT's scheme, drawn in parameter order from one CPU generator.

        Weights of linear and embedding layers ~ N(0, 0.02); residual projections
        (`c_proj`) ~ N(0, 0.02 / sqrt(2 * n_layer)) (GPT-2 paper); biases 0; LayerNorm 1.
        """
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        norm_weights = {id(m.weight) for m in self.modules() if isinstance(m, nn.LayerNorm)}
        for name, p in self.named_parameters():  # the tied weight is listed once
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, residual_std, generator=gen)
            elif id(p) in norm_weights:
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02, generator=gen)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count as nanoGPT reports it: position embeddings excluded.

        The token embedding stays in: it is tied to the LM head, whose matmul is real work.
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:
            return self.lm_head(
                x[:, [-1], :]
            ), None  # (B, 1, V): generation needs the last step only
        logits = self.lm_head(x)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(
        self, idx: torch.Tensor, n_new: int, *, temperature: float, top_k: int, gen: torch.Generator
    ) -> torch.Tensor:
        """Sample n_new tokens after idx (B, T); sampling draws only from `gen`."""
        for _ in range(n_new):
            context = idx[:, -self.config.block_size :]
            logits, _ = self(context)
            logits = logits[:, -1, :].float() / temperature  # (B, V)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, 1, generator=gen)), dim=1)
        return idx
