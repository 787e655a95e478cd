"""Daily time-varying parameters from forcings and static attributes (DDR's "CudaLSTM")."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ddr_pipeline.models.grouping import first_members, group_reaches
from ddr_pipeline.models.rng import isolated_rng

LSTMState = tuple[torch.Tensor, torch.Tensor]

_CUDNN_MAX_ELEMENTS = 2**30
"""Gate activations (T x N x 4H) per cuDNN LSTM call: half the int32 range, for margin."""


class DailyParameterLSTM(nn.Module):
    """``Linear(A+F -> H)`` -> ReLU -> ``LSTM(H, H, layers)`` -> Dropout -> ``Linear(H -> P)`` -> sigmoid.

    Time-major: ``forward(forcings (T, N, F), attributes (N, A), state)`` returns
    ``({name: (T, N)} in (0, 1), (h, c))``. Pass the returned state back in to continue a
    sequence (inference over consecutive windows); ``None`` starts from zeros. The input and
    output layers use DDR's KAN init (output starts near 0.5); the LSTM keeps PyTorch's init.

    ``chunk_reaches`` bounds the activation memory when gradients are recorded: the reaches are
    run in chunks of that many sequences, each under activation checkpointing (its forward keeps
    only inputs and outputs; the backward recomputes one chunk at a time, with the same dropout
    mask), so the saved activations are those of one chunk instead of all N reaches, for one
    extra LSTM forward. Chunking gives the same values as one pass without dropout; with
    dropout the masks are drawn per chunk (a different random stream, equally seeded).

    ``sequence_groups`` (None: one sequence per reach) runs the LSTM on at most that many
    sequences: the reaches of a call are grouped by seeded k-means on their static attributes
    (:func:`group_reaches`, a deterministic function of the attributes alone, so every window
    and every day of the same reaches gets the same groups), each group's sequence is fed the
    group-mean forcings and attributes, and each reach gets its group's daily parameters. The
    state stays per reach (members of a group carry their group's state; a group continues
    from the state of its first reach).
    """

    def __init__(
        self,
        n_forcings: int,
        n_attributes: int,
        parameter_names: list[str],
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.5,
        seed: int = 0,
        sequence_groups: int | None = None,
    ) -> None:
        super().__init__()
        if n_forcings < 1 or n_attributes < 0 or not parameter_names:
            raise ValueError(
                f"DailyParameterLSTM needs >= 1 forcing and >= 1 parameter, got {n_forcings} "
                f"forcings, {n_attributes} attributes, parameters {parameter_names}"
            )
        if sequence_groups is not None and (
            isinstance(sequence_groups, bool) or int(sequence_groups) != sequence_groups
            or sequence_groups < 1 or n_attributes == 0
        ):  # fmt: skip
            raise ValueError(
                f"sequence_groups must be a positive integer (or None) and needs static "
                f"attributes to group by, got {sequence_groups!r} with {n_attributes} attributes"
            )
        self.sequence_groups = sequence_groups
        self.grouping_seed = seed
        self.n_forcings = n_forcings
        self.n_attributes = n_attributes
        self.parameter_names = list(parameter_names)
        generator = torch.Generator().manual_seed(seed)
        with isolated_rng(seed):
            self.input = nn.Linear(n_forcings + n_attributes, hidden_size)
            self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=num_layers)
            self.output = nn.Linear(hidden_size, len(parameter_names))
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            nn.init.kaiming_normal_(self.input.weight, nonlinearity="relu", generator=generator)
            nn.init.xavier_normal_(self.output.weight, gain=0.1, generator=generator)
            nn.init.zeros_(self.input.bias)
            nn.init.zeros_(self.output.bias)

    def _check(self, forcings: torch.Tensor, attributes: torch.Tensor) -> None:
        if forcings.ndim != 3 or forcings.shape[2] != self.n_forcings:
            raise ValueError(
                f"forcings must have shape (T_days, N, {self.n_forcings}), "
                f"got {tuple(forcings.shape)}"
            )
        expected = (forcings.shape[1], self.n_attributes)
        if tuple(attributes.shape) != expected:
            raise ValueError(
                f"attributes must have shape {expected}, got {tuple(attributes.shape)}"
            )

    def forward(
        self,
        forcings: torch.Tensor,
        attributes: torch.Tensor,
        state: LSTMState | None = None,
        chunk_reaches: int | None = None,
    ) -> tuple[dict[str, torch.Tensor], LSTMState]:
        """Daily parameters ``{name: (T_days, N)}`` in (0, 1) and the final ``(h, c)`` state."""
        self._check(forcings, attributes)
        if chunk_reaches is not None and chunk_reaches < 1:
            raise ValueError(f"chunk_reaches must be a positive integer, got {chunk_reaches}")
        if self.sequences(forcings.shape[1]) == forcings.shape[1]:
            out, new_state = self._run(forcings, attributes, state, chunk_reaches)
        else:
            out, new_state = self._grouped(forcings, attributes, state, chunk_reaches)
        return {name: out[..., j] for j, name in enumerate(self.parameter_names)}, new_state

    def sequences(self, n_reaches: int) -> int:
        """How many LSTM sequences a call on ``n_reaches`` reaches runs (at most)."""
        if self.sequence_groups is None:
            return n_reaches
        return min(self.sequence_groups, n_reaches)

    @contextlib.contextmanager
    def per_reach(self) -> Iterator[DailyParameterLSTM]:
        """One sequence per reach inside the block (the memory planner measures what one
        sequence costs; grouped calls then run :meth:`sequences` of them)."""
        groups, self.sequence_groups = self.sequence_groups, None
        try:
            yield self
        finally:
            self.sequence_groups = groups

    def _grouped(
        self,
        forcings: torch.Tensor,
        attributes: torch.Tensor,
        state: LSTMState | None,
        chunk_reaches: int | None,
    ) -> tuple[torch.Tensor, LSTMState]:
        """:meth:`_run` on one sequence per group of reaches, spread back to the reaches."""
        labels = group_reaches(attributes, self.sequence_groups, seed=self.grouping_seed)
        n_groups = int(labels.max()) + 1
        counts = torch.bincount(labels, minlength=n_groups).to(forcings.dtype)
        days = forcings.shape[0]
        group_forcings = forcings.new_zeros(days, n_groups, forcings.shape[2])
        group_forcings = group_forcings.index_add(1, labels, forcings) / counts[:, None]
        group_attributes = attributes.new_zeros(n_groups, attributes.shape[1])
        group_attributes = group_attributes.index_add(0, labels, attributes) / counts[:, None]
        group_state = None
        if state is not None:
            first = first_members(labels, n_groups)
            group_state = (state[0][:, first], state[1][:, first])
        out, (h, c) = self._run(group_forcings, group_attributes, group_state, chunk_reaches)
        return out[:, labels], (h[:, labels], c[:, labels])

    def _run(
        self,
        forcings: torch.Tensor,
        attributes: torch.Tensor,
        state: LSTMState | None,
        chunk_reaches: int | None,
    ) -> tuple[torch.Tensor, LSTMState]:
        """``(T_days, N, P)`` outputs and state of N sequences (chunked as configured)."""
        n_reaches = forcings.shape[1]
        limit = self._library_limit(forcings)
        if chunk_reaches is not None and chunk_reaches < n_reaches and torch.is_grad_enabled():
            size = chunk_reaches if limit is None else min(chunk_reaches, limit)
            return self._in_chunks(forcings, attributes, state, size, checkpointed=True)
        if limit is not None and limit < n_reaches:
            return self._in_chunks(forcings, attributes, state, limit, checkpointed=False)
        return self._sequences(forcings, attributes, state)

    def _library_limit(self, forcings: torch.Tensor) -> int | None:
        """Most sequences one cuDNN LSTM call takes (None: no limit, off CUDA).

        cuDNN indexes the gate activations (T x N x 4H) with 32-bit integers: a continental
        batch (365 days x 50,000 reaches x 4·64) overflows it and fails with an illegal memory
        access (seen on an H200), so larger batches run as several calls (same values).
        """
        if not forcings.is_cuda:
            return None
        per_sequence = forcings.shape[0] * 4 * self.lstm.hidden_size
        return max(1, _CUDNN_MAX_ELEMENTS // per_sequence)

    def _in_chunks(  # noqa: PLR0913 (the sequences, their state and how to split them)
        self,
        forcings: torch.Tensor,
        attributes: torch.Tensor,
        state: LSTMState | None,
        size: int,
        *,
        checkpointed: bool,
    ) -> tuple[torch.Tensor, LSTMState]:
        """:meth:`_sequences` over chunks of ``size`` reaches (under activation checkpointing
        when ``checkpointed``), concatenated."""
        outs, hs, cs = [], [], []
        for lo in range(0, forcings.shape[1], size):
            sl = slice(lo, lo + size)
            part = None if state is None else (state[0][:, sl], state[1][:, sl])
            args = (forcings[:, sl], attributes[sl], part)
            if checkpointed:
                o, (h, c) = checkpoint(self._sequences, *args, use_reentrant=False)
            else:
                o, (h, c) = self._sequences(*args)
            outs.append(o)
            hs.append(h)
            cs.append(c)
        return torch.cat(outs, dim=1), (torch.cat(hs, dim=1), torch.cat(cs, dim=1))

    def _sequences(
        self, forcings: torch.Tensor, attributes: torch.Tensor, state: LSTMState | None
    ) -> tuple[torch.Tensor, LSTMState]:
        """``(T_days, N, P)`` outputs in (0, 1) and the final state of the given sequences."""
        static = attributes.unsqueeze(0).expand(forcings.shape[0], -1, -1)
        hidden = torch.relu(self.input(torch.cat([forcings, static], dim=2)))
        hidden, new_state = self.lstm(hidden, state)
        return torch.sigmoid(self.output(self.dropout(hidden))), new_state
