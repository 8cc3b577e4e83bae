"""A batch of HistFactory models compiled into dense arrays, with an analytic likelihood.

All models of a batch share channels and bins (they are the signal points of one background
model); samples and parameters are the union over the batch, and whatever a point lacks is
neutral for it (zero yield, factor one, parameter fixed and unconstrained).

Array shapes use R for rows (model evaluations, each pointing at one model of the batch),
P for parameters, S for sample-bins (every sample of every channel times its bins) and N for
bins (all channels concatenated).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from itertools import chain

import numpy as np
from scipy.special import gammaln

from reinterpret.fitter import interpolation, kernel
from reinterpret.fitter.errors import ModelError
from reinterpret.fitter.spec import LINEAR_TYPES, ParameterSpec, WorkspaceSpec

LOG_2PI = float(np.log(2.0 * np.pi))
# Row blocks of the batched evaluation: about this many bytes per (rows, parameters,
# sample-bins) array, within these row counts (see ModelBatch.tile_rows).
TILE_BYTES = 1 << 20
MIN_TILE_ROWS = 4
MAX_TILE_ROWS = 64
CATEGORIES = ("linear", "normsys", "histosys", "normsys+histosys")


def _category(modifier_types: set[str]) -> str:
    if modifier_types & set(LINEAR_TYPES):
        return "linear"
    if modifier_types == {"normsys"}:
        return "normsys"
    if modifier_types == {"histosys"}:
        return "histosys"
    return "normsys+histosys"


@dataclass(frozen=True)
class InterpolationCodes:
    normsys: str = "code4"
    histosys: str = "code4p"

    def __post_init__(self) -> None:
        if self.normsys not in interpolation.MULTIPLICATIVE_CODES:
            raise ModelError(f"unsupported normsys interpolation {self.normsys!r}")
        if self.histosys not in interpolation.ADDITIVE_CODES:
            raise ModelError(f"unsupported histosys interpolation {self.histosys!r}")


@dataclass
class Evaluation:
    """NLL (R,), gradient (R, P) and Hessian (R, P, P) of -log L (not twice). With the
    Hessian also what fisher() needs: the yields' Jacobian per bin jac (R, P, N), the
    Poisson weights n / nu^2 per bin (R, N) and the constraints' second derivatives
    curvature (R, P)."""

    nll: np.ndarray
    grad: np.ndarray
    hess: np.ndarray | None
    jac: np.ndarray | None = None
    weight: np.ndarray | None = None
    curvature: np.ndarray | None = None

    def take(self, rows: slice) -> Evaluation:
        """A view of some rows (writing to it writes to this evaluation)."""
        return Evaluation(
            self.nll[rows],
            self.grad[rows],
            *(
                None if x is None else x[rows]
                for x in (self.hess, self.jac, self.weight, self.curvature)
            ),
        )

    def set_rows(self, rows: np.ndarray, other: Evaluation) -> None:
        """Rows `rows` of this evaluation become other's rows (all of them, in order)."""
        self.nll[rows], self.grad[rows] = other.nll, other.grad
        for name in ("hess", "jac", "weight", "curvature"):
            mine = getattr(self, name)
            if mine is not None:
                mine[rows] = getattr(other, name)

    def fisher(self, rows: np.ndarray) -> np.ndarray:
        """The Hessian of the given rows without the second derivatives of the yields:
        J W J^T plus the constraints, positive semi-definite (K, P, P): the Newton step's
        stand-in where the Hessian is not positive definite, computed only for those rows."""
        jac = self.jac[rows]
        out = np.matmul(jac * self.weight[rows][:, None, :], jac.transpose(0, 2, 1))
        idx = np.arange(out.shape[1])
        out[:, idx, idx] += self.curvature[rows]
        return out


@dataclass
class _Yields:
    """What the compiled kernel (kernel.yields) returns for R rows: A and F per sample-bin
    (R, S), expected yields per bin nu (R, N), the Poisson part of -log L (R,); with
    derivatives the Poisson part's gradient (R, P), dnu/dp per bin (R, P, N), U and rho of
    the off-diagonal second derivatives (R, P, S + N: J W J^T in the last N columns), their
    diagonal (R, P), the terms of the sample-bins with one zero factor per histosys pair
    (column zero_q, -1 for none; value) and the Poisson weights n / nu^2 per bin (R, N)."""

    additive: np.ndarray
    factor: np.ndarray
    nu: np.ndarray
    nll: np.ndarray
    grad: np.ndarray | None = None
    jac_bins: np.ndarray | None = None
    u: np.ndarray | None = None
    rho: np.ndarray | None = None
    diag: np.ndarray | None = None
    zero_q: np.ndarray | None = None
    zero_value: np.ndarray | None = None
    weight: np.ndarray | None = None


class ModelBatch:
    """Dense arrays for B models; see the module docstring for the shapes."""

    def __init__(self, specs: list[WorkspaceSpec], codes: InterpolationCodes | None = None):
        if not specs:
            raise ModelError("no model to compile")
        self.codes = codes or InterpolationCodes()
        first = specs[0]
        for spec in specs[1:]:
            if spec.channels != first.channels:
                raise ModelError("models of one batch must share their channels and bins")
            if spec.poi != first.poi:
                raise ModelError("models of one batch must share their parameter of interest")
        self.size = len(specs)
        self._buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.channels = first.channels
        self.poi_name = first.poi
        self.nbins = sum(n for _, n in self.channels)
        self._layout_parameters(specs)
        self._layout_samples(specs)
        self._fill(specs)

    # ----------------------------------------------------------------- layout
    def _layout_parameters(self, specs: list[WorkspaceSpec]) -> None:
        """Assign parameter slots. Parameters every point has get a slot of their own; those
        only some points have (a signal sample's own statistical uncertainty, say) share pools
        of slots by category, so that the batch is not as wide as the union of all of them."""
        self.par_specs: dict[str, ParameterSpec] = {}
        counts: dict[str, int] = {}
        for spec in specs:
            for name, par in spec.parameters.items():
                counts[name] = counts.get(name, 0) + 1
                known = self.par_specs.get(name)
                if known is None:
                    self.par_specs[name] = known = copy.copy(par)
                    known.modifier_types = set(par.modifier_types)
                elif known.size != par.size or known.kind != par.kind:
                    raise ModelError(f"parameter {name!r} differs between signal points")
                known.modifier_types |= par.modifier_types
        category = {name: _category(par.modifier_types) for name, par in self.par_specs.items()}
        slot_category: list[str] = []
        shared: dict[str, slice] = {}
        for name, par in self.par_specs.items():
            if counts[name] == len(specs):
                shared[name] = slice(len(slot_category), len(slot_category) + par.size)
                slot_category += [category[name]] * par.size
        if self.poi_name not in shared:
            raise ModelError(f"the parameter of interest {self.poi_name!r} is not in every model")
        need = dict.fromkeys(CATEGORIES, 0)
        for spec in specs:
            used = dict.fromkeys(CATEGORIES, 0)
            for name, par in spec.parameters.items():
                if name not in shared:
                    used[category[name]] += par.size
            need = {c: max(need[c], used[c]) for c in CATEGORIES}
        pool_start = {}
        for c in CATEGORIES:
            pool_start[c] = len(slot_category)
            slot_category += [c] * need[c]
        self.slices: list[dict[str, slice]] = []
        self.labels: list[list[str]] = []
        # The shared slots' labels once; each point's own (pooled) slots on a copy.
        shared_labels = _slot_labels([""] * len(slot_category), shared.items())
        for spec in specs:
            slices = dict(shared)
            cursor = dict(pool_start)
            own = []
            for name, par in spec.parameters.items():
                if name not in shared:
                    c = category[name]
                    slices[name] = slice(cursor[c], cursor[c] + par.size)
                    own.append((name, slices[name]))
                    cursor[c] += par.size
            self.slices.append(slices)
            self.labels.append(_slot_labels(list(shared_labels), own))
        self.slot_category = slot_category
        self.npars = len(slot_category)
        self.poi_index = shared[self.poi_name].start
        # Slots that mean the same parameter in every model (the rest are pooled).
        self.common_slots = np.zeros(self.npars, dtype=bool)
        for sl in shared.values():
            self.common_slots[sl] = True

    def _layout_samples(self, specs: list[WorkspaceSpec]) -> None:
        """Assign sample slots per channel. Samples every point has get their own slot; the
        others (a signal sample named after its point, say) share a pool of slots in their
        channel, so the batch does not grow with the number of differently named signals."""
        counts: dict[tuple[str, str], int] = {}
        for spec in specs:
            for sample in spec.samples:
                key = (sample.channel, sample.name)
                counts[key] = counts.get(key, 0) + 1
        offsets = {name: 0 for name, _ in self.channels}
        nbins = dict(self.channels)
        acc = 0
        for name, n in self.channels:
            offsets[name] = acc
            acc += n
        slots: list[tuple[str, int]] = []  # (channel, first global bin) per slot
        shared: dict[tuple[str, str], int] = {}
        for key, count in counts.items():
            if count == len(specs):
                shared[key] = len(slots)
                slots.append((key[0], offsets[key[0]]))
        need = dict.fromkeys(offsets, 0)
        for spec in specs:
            private = dict.fromkeys(offsets, 0)
            for sample in spec.samples:
                if (sample.channel, sample.name) not in shared:
                    private[sample.channel] += 1
            need = {c: max(need[c], private[c]) for c in need}
        pool: dict[str, int] = {}
        for channel, _ in self.channels:
            pool[channel] = len(slots)
            slots += [(channel, offsets[channel])] * need[channel]
        self.sample_slots: list[dict[tuple[str, str], int]] = []
        for spec in specs:
            cursor = dict(pool)
            mapping = dict(shared)
            for sample in spec.samples:
                key = (sample.channel, sample.name)
                if key not in shared:
                    mapping[key] = cursor[sample.channel]
                    cursor[sample.channel] += 1
            self.sample_slots.append(mapping)
        sizes = [nbins[c] for c, _ in slots]
        starts = np.cumsum([0] + sizes)
        self._sample_start = starts[:-1]
        self.nsb = int(starts[-1])
        self.sb_bin = np.concatenate(
            [np.arange(o, o + n) for (_, o), n in zip(slots, sizes, strict=True)]
        ).astype(int)
        self.sum_to_bins = np.zeros((self.nsb, self.nbins))
        self.sum_to_bins[np.arange(self.nsb), self.sb_bin] = 1.0

    def _fill(self, specs: list[WorkspaceSpec]) -> None:
        B, P, S = self.size, self.npars, self.nsb
        cats = np.array(self.slot_category)
        self.lin_idx = np.flatnonzero(cats == "linear")
        self.ns_idx = np.flatnonzero((cats == "normsys") | (cats == "normsys+histosys"))
        self.hs_idx = np.flatnonzero((cats == "histosys") | (cats == "normsys+histosys"))
        lin_pos = {int(p): i for i, p in enumerate(self.lin_idx)}
        ns_pos = {int(p): i for i, p in enumerate(self.ns_idx)}
        hs_pos = {int(p): i for i, p in enumerate(self.hs_idx)}
        self.nominal = np.zeros((B, S))
        self.lin_on = np.zeros((B, len(self.lin_idx), S))
        self.ns_hi = np.ones((B, len(self.ns_idx), S))
        self.ns_lo = np.ones((B, len(self.ns_idx), S))
        self.hs_up = np.zeros((B, len(self.hs_idx), S))
        self.hs_down = np.zeros((B, len(self.hs_idx), S))
        self.present = np.zeros((B, P), dtype=bool)
        self.init = np.ones((B, P))
        self.lower = np.zeros((B, P))
        self.upper = np.ones((B, P)) * 10.0
        self.fixed = np.zeros((B, P), dtype=bool)
        self.gauss = np.zeros((B, P), dtype=bool)
        self.poisson = np.zeros((B, P), dtype=bool)
        self.aux = np.zeros((B, P))
        self.sigma = np.ones((B, P))
        self.tau = np.ones((B, P))
        self.observed = np.zeros((B, self.nbins))

        positions = (lin_pos, ns_pos, hs_pos)
        common = set.intersection(*({id(x) for x in spec.samples} for spec in specs))
        # Points share most parameter specs (the same objects, see spec.read_workspace): each
        # distinct (spec, slots) is written once for all the rows that have it.
        groups: dict[tuple, tuple[ParameterSpec, slice, list[int]]] = {}
        for b, spec in enumerate(specs):
            self.observed[b] = np.concatenate([spec.observations[c] for c, _ in self.channels])
            slices = self.slices[b]
            for name, par in spec.parameters.items():
                sl = slices[name]
                groups.setdefault((id(par), sl.start, sl.stop), (par, sl, []))[2].append(b)
            for sample in spec.samples:
                if id(sample) not in common:
                    self._fill_sample(b, sample, self.sample_slots[b], slices, positions)
        for par, sl, rows in groups.values():
            self._fill_parameter(np.array(rows)[:, None], sl, par)
        # Samples every point shares (the background) are written once for all rows.
        for sample in specs[0].samples:
            if id(sample) in common:
                self._fill_sample(
                    slice(None), sample, self.sample_slots[0], self.slices[0], positions
                )
        # Parameters a point does not have are neutral: fixed at their initial value.
        self.fixed |= ~self.present
        # Only (parameter, sample-bin) pairs that some point varies are interpolated.
        varied = ((self.ns_hi != 1.0) | (self.ns_lo != 1.0)).any(axis=0)
        ns_par, self.ns_sb = np.nonzero(varied)
        self.ns_par = self.ns_idx[ns_par]
        self.ns_hi = self.ns_hi[:, ns_par, self.ns_sb]
        self.ns_lo = self.ns_lo[:, ns_par, self.ns_sb]
        # Likewise histosys: one entry per (parameter, sample-bin) pair that some point shifts.
        varied = ((self.hs_up != 0.0) | (self.hs_down != 0.0)).any(axis=0)
        hs_par, hs_sb = np.nonzero(varied)
        self.hs_sb = np.ascontiguousarray(hs_sb)
        self.hs_par = self.hs_idx[hs_par]
        self.hs_up = np.ascontiguousarray(self.hs_up[:, hs_par, self.hs_sb])
        self.hs_down = np.ascontiguousarray(self.hs_down[:, hs_par, self.hs_sb])
        self._pair_tables()
        # Parameters whose interpolation has a kink at 0 (code0, and code1 normsys: different
        # slopes each side).
        self.kinks = np.zeros(self.npars, dtype=bool)
        if self.codes.histosys == "code0":
            self.kinks[self.hs_par[(self.hs_up != self.hs_down).any(axis=0)]] = True
        if self.codes.normsys == "code0":
            self.kinks[self.ns_par[(self.ns_hi - 1.0 != 1.0 - self.ns_lo).any(axis=0)]] = True
        if self.codes.normsys == "code1":
            # hi**alpha and lo**-alpha: slopes log(hi) and -log(lo) at 0, equal only where
            # hi * lo == 1.
            with np.errstate(divide="ignore", invalid="ignore"):
                bent = ~np.isclose(np.log(self.ns_hi), -np.log(self.ns_lo), rtol=0, atol=1e-12)
            self.kinks[self.ns_par[bent.any(axis=0)]] = True
        # Parameters along which a yield can fold back: an up and a down variation that go the
        # same way (normsys hi and lo both above or both below 1; histosys hi_data and lo_data
        # on the same side of the nominal), so that two values of the parameter give one yield
        # and -log L can have a minimum on each side. Kinks count too (code0: one minimum each
        # side of 0). These are the parameters whose sign the multi-start flips (starts.py).
        self.folds = self.kinks.copy()
        self.folds[self.ns_par[((self.ns_hi - 1.0) * (self.ns_lo - 1.0) > 0).any(axis=0)]] = True
        self.folds[self.hs_par[(self.hs_up * self.hs_down < 0).any(axis=0)]] = True

    def _pair_tables(self) -> None:
        """The multiplicative factors as (parameter, sample-bin) pairs, so that the evaluation
        never builds the dense (rows, parameters, sample-bins) factor arrays, most of whose
        entries are 1: first the linear pairs (normfactor, lumi, staterror, shapesys,
        shapefactor: the factor is the parameter where the model has the modifier, else 1),
        then the normsys pairs (ns_par, ns_sb). A normsys factor is the same over the bins of
        its sample, so it is interpolated once per (parameter, sample) and spread to the pairs.
        """
        lin_slot, lin_sb = np.nonzero((self.lin_on != 0).any(axis=0))
        self.lin_pair_on = np.ascontiguousarray(self.lin_on[:, lin_slot, lin_sb] != 0)
        del self.lin_on  # (B, L, S), read by the compilation only
        self.lin_pair_par = self.lin_idx[lin_slot]
        self.mul_par = np.concatenate([self.lin_pair_par, self.ns_par]).astype(int)
        self.mul_sb = np.concatenate([lin_sb, self.ns_sb]).astype(int)
        self.poisson_cols = np.flatnonzero(self.poisson.any(axis=0))
        # The normsys and histosys pairs of each parameter (for nll_moved).
        self.ns_by_par = _by_parameter(self.ns_par, self.npars)
        self.hs_by_par = _by_parameter(self.hs_par, self.npars)
        # Per histosys pair, the multiplicative pair of the same (parameter, sample-bin): a
        # parameter that is normsys and histosys on one sample (-1: none).
        where = {int(f): i for i, f in enumerate(self.mul_par * self.nsb + self.mul_sb)}
        hs_flat = self.hs_par * self.nsb + self.hs_sb
        self.hs_mul = np.array([where.get(int(f), -1) for f in hs_flat], dtype=np.int64)
        # Normsys pairs by (parameter, sample): interpolated once each (ns_unique), spread
        # back to the pairs by ns_spread.
        sample_of_sb = np.searchsorted(self._sample_start, np.arange(self.nsb), side="right") - 1
        keys = self.ns_par * len(self._sample_start) + sample_of_sb[self.ns_sb]
        _, first, self.ns_spread = np.unique(keys, return_index=True, return_inverse=True)
        self.ns_spread = self.ns_spread.ravel()
        self.ns_unique_par = self.ns_par[first]
        self.ns_unique_hi = np.ascontiguousarray(self.ns_hi[:, first])
        self.ns_unique_lo = np.ascontiguousarray(self.ns_lo[:, first])
        # (B, U, 6): an entry's six code4 coefficients side by side (read for code4 only).
        self.ns_unique_coef = (
            _code4_by_column(self.ns_unique_hi, self.ns_unique_lo)
            if self.codes.normsys == "code4"
            else np.zeros((1, 1, 6))
        )
        self.lin_pair_sb = np.ascontiguousarray(lin_sb, dtype=np.int64)
        self._hs_code = kernel.HISTOSYS_CODES[self.codes.histosys]
        self._ns_code = kernel.NORMSYS_CODES[self.codes.normsys]
        # Stand-ins for the derivative outputs of a value-only kernel call.
        self._no_derivatives = (
            np.empty((0, 0)),
            np.empty((0, 0, 0)),
            np.empty((0, 0, 0)),
            np.empty((0, 0, 0)),
            np.empty((0, 0)),
            np.empty((0, 0), dtype=np.int64),
            np.empty((0, 0)),
            np.empty((0, 0)),
        )

    def _fill_parameter(self, rows: np.ndarray, sl: slice, par: ParameterSpec) -> None:
        """Write one parameter spec into its slots of the given rows (a column (n, 1))."""
        self.present[rows, sl] = True
        self.init[rows, sl] = par.inits
        self.lower[rows, sl] = [lo for lo, _ in par.bounds]
        self.upper[rows, sl] = [hi for _, hi in par.bounds]
        self.fixed[rows, sl] = par.fixed
        if par.kind == "gauss":
            self.gauss[rows, sl] = True
            self.aux[rows, sl] = par.aux
            self.sigma[rows, sl] = par.sigmas
        elif par.kind == "poisson":
            self.poisson[rows, sl] = True
            self.aux[rows, sl] = par.aux
            self.tau[rows, sl] = par.factors

    def _fill_sample(self, b, sample, slots, slices, positions) -> None:
        """Write one sample's yields and modifiers into row(s) b of the arrays: one indexed
        assignment per kind of modifier (one per modifier was most of compiling)."""
        lin_pos, ns_pos, hs_pos = positions
        k = slots[(sample.channel, sample.name)]
        start = int(self._sample_start[k])
        nominal = np.asarray(sample.nominal)
        cols = slice(start, start + nominal.size)
        self.nominal[b, cols] = nominal
        mods = sample.modifiers
        # One pass over the modifiers, sorted by kind. A histosys whose up and down data are
        # the nominal changes nothing (every signal histosys of staus, three quarters of
        # 1lbb's): its slot is only checked for duplicates, its data are not read.
        scalar, per_bin, normsys, histosys, hs_slot = [], [], [], [], []
        same = sample.nominal
        for m, t, d in mods:
            if t == "histosys":
                hs_slot.append(hs_pos[slices[m].start])
                if d["hi_data"] != same or d["lo_data"] != same:
                    histosys.append((hs_slot[-1], d))
            elif t == "normsys":
                normsys.append((ns_pos[slices[m].start], d))
            elif t in ("normfactor", "lumi"):
                scalar.append(lin_pos[slices[m].start])
            elif t in ("shapefactor", "staterror", "shapesys"):  # a parameter per bin
                sl = slices[m]
                per_bin.extend(
                    (lin_pos[sl.start + i], start + i) for i in range(sl.stop - sl.start)
                )
        ns_slot = [i for i, _ in normsys]
        # A modifier twice on the sample puts its slot twice in its kind's list.
        if any(len(set(x)) != len(x) for x in (scalar, per_bin, ns_slot, hs_slot)):
            keys = [(mname, mtype) for mname, mtype, _ in mods]
            for i, (mname, mtype) in enumerate(keys):
                if (mname, mtype) in keys[:i]:
                    raise ModelError(
                        f"modifier {mname!r} ({mtype}) appears twice on sample {sample.name!r}"
                    )
        if scalar:
            self.lin_on[b, scalar, cols] = 1.0
        if per_bin:
            slot, col = zip(*per_bin, strict=True)
            self.lin_on[b, list(slot), list(col)] = 1.0
        if normsys:
            hi = np.array([float(d["hi"]) for _, d in normsys])
            lo = np.array([float(d["lo"]) for _, d in normsys])
            self.ns_hi[b, ns_slot, cols] = hi[:, None]
            self.ns_lo[b, ns_slot, cols] = lo[:, None]
        if histosys:
            data = [d for _, d in histosys]
            up = _histosys_data(data, "hi_data", sample)
            down = _histosys_data(data, "lo_data", sample)
            shifted = [i for i, _ in histosys]
            self.hs_up[b, shifted, cols] = up - nominal
            self.hs_down[b, shifted, cols] = nominal - down

    # ------------------------------------------------------------- likelihood
    def expected(self, theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected main data (R, N) and the expected auxiliary data (R, P) at theta."""
        nu = self._yields(theta, rows).nu
        aux = np.where(self.poisson[rows], self.tau[rows] * theta, theta)
        return nu, aux

    def sample_yields(self, theta: np.ndarray, row: int) -> dict[tuple[str, str], np.ndarray]:
        """Expected yield per bin of every sample of model `row` at parameters theta (P,)."""
        y = self._yields(theta[None, :], np.array([row]))
        nu_sb = (y.additive * y.factor)[0]
        nbins = dict(self.channels)
        out = {}
        for key, slot in self.sample_slots[row].items():
            start = self._sample_start[slot]
            out[key] = nu_sb[start : start + nbins[key[0]]]
        return out

    def _yields(self, theta: np.ndarray, rows: np.ndarray, main: np.ndarray | None = None,
                derivatives: int = kernel.NONE) -> _Yields:  # fmt: skip
        """Yields (and with derivatives, kernel.GRADIENT or kernel.HESSIAN, what the gradient
        or also the Hessian needs) of rows theta (R, P) of models rows, by the compiled
        kernel; main (R, N): the counts the Poisson part of -log L is taken against (zeros
        when not given)."""
        R, P, S, N = theta.shape[0], self.npars, self.nsb, self.nbins
        theta = np.ascontiguousarray(theta, dtype=float)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        main = np.zeros((R, N)) if main is None else np.ascontiguousarray(main, dtype=float)
        out = _Yields(np.empty((R, S)), np.empty((R, S)), np.empty((R, N)), np.empty(R))
        if derivatives:
            # The Hessian's parts only where asked for (empty stand-ins of one type otherwise).
            hessian = derivatives == kernel.HESSIAN
            K, P2 = (self.hs_par.size, P) if hessian else (0, 0)
            out.grad = np.empty((R, P))
            out.jac_bins = np.zeros((R, P, N))
            out.u, out.rho = self._pair_buffers(R) if hessian else (np.zeros((R, 0, 0)),) * 2
            out.diag = np.zeros((R, P2))
            out.zero_q = np.empty((R, K), dtype=np.int64)
            out.zero_value = np.empty((R, K))
            out.weight = np.empty((R, N) if hessian else (0, 0))
            extra = (
                out.grad, out.jac_bins, out.u, out.rho, out.diag, out.zero_q, out.zero_value,
                out.weight,
            )  # fmt: skip
        else:
            extra = self._no_derivatives
        kernel.yields(
            theta, rows, main, self.nominal, self.sb_bin, N,
            self._hs_code, self.hs_par, self.hs_sb, self.hs_up, self.hs_down,
            self.lin_pair_par, self.lin_pair_sb, self.lin_pair_on,
            self._ns_code, self.ns_unique_par, self.ns_unique_hi, self.ns_unique_lo,
            self.ns_unique_coef, self.ns_spread, self.mul_par, self.mul_sb, self.hs_mul,
            derivatives, out.additive, out.factor, out.nu, out.nll, *extra,
        )  # fmt: skip
        return out

    def _pair_buffers(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """U and rho (rows, P, S + N) for the kernel, reused from call to call (per thread):
        of the first S columns the kernel writes only the entries of the (parameter,
        sample-bin) pairs, the same ones in every call, so the rest stays zero (the last N
        it writes whole). Zeroing two such arrays afresh for every block of rows cost 1lbb
        about 30 us per row (they are twice 73 kB per row, in kernel.PRODUCT precision)."""
        key = threading.get_ident()
        held = self._buffers.get(key)
        if held is None or held[0].shape[0] < rows:
            shape = (max(rows, self.tile_rows), self.npars, self.nsb + self.nbins)
            held = self._buffers[key] = (
                np.zeros(shape, kernel.PRODUCT),
                np.zeros(shape, kernel.PRODUCT),
            )
        return held[0][:rows], held[1][:rows]

    @property
    def tile_rows(self) -> int:
        """Rows evaluated together: as many as keep one (rows, parameters, sample-bins) array
        near TILE_BYTES. Larger blocks make every pass over those arrays leave the cache
        (measured on 1lbb: 1.5 ms per row in blocks of 300 rows, 0.8 in blocks of 8)."""
        per_row = 8 * self.npars * self.nsb
        return int(min(MAX_TILE_ROWS, max(MIN_TILE_ROWS, TILE_BYTES // max(per_row, 1))))

    def evaluate(
        self,
        theta: np.ndarray,
        rows: np.ndarray,
        main: np.ndarray,
        aux: np.ndarray,
        hessian: bool = True,
    ) -> Evaluation:
        """-log L with gradient and (optionally) Hessian for parameter rows theta (R, P),
        in blocks of tile_rows rows written into one result; see _evaluate."""
        R, P = theta.shape
        out = Evaluation(np.empty(R), np.empty((R, P)), None)
        if hessian:
            out.hess = np.empty((R, P, P))
            out.jac = np.empty((R, P, self.nbins))
            out.weight = np.empty((R, self.nbins))
            out.curvature = np.empty((R, P))
        for t in self._tiles(R):
            self._evaluate(theta[t], rows[t], main[t], aux[t], out.take(t))
        return out

    def _tiles(self, count: int) -> list[slice]:
        tile = self.tile_rows
        return [slice(i, i + tile) for i in range(0, count, tile)]

    def _evaluate(
        self, theta: np.ndarray, rows: np.ndarray, main: np.ndarray, aux: np.ndarray, out
    ) -> None:
        """-log L with gradient and (if out.hess is not None) Hessian for parameter rows
        theta (R, P), written into out (an Evaluation of R rows).

        main: observed counts per bin (R, N); aux: auxiliary data per parameter (R, P).
        The normalisation matches the HistFactory convention (continuous Poisson with
        log-gamma, full Gaussian density), so 2*nll is comparable with other implementations.

        With nu_s = A_s F_s (A the nominal plus additive shifts, F the product of the factors
        g_ps) and m_ps = g'_ps prod_{q != p} g_qs, the yield derivatives are
        dnu_s/dp = A'_ps F_s + A_s m_ps and, for p != q,
        d2nu_s/dp dq = A'_ps m_qs + A'_qs m_ps + A_s m_ps rho_qs with rho = g'/g.
        """
        hessian = out.hess is not None
        y = self._yields(theta, rows, main, kernel.HESSIAN if hessian else kernel.GRADIENT)
        nll_c, grad_c, hess_c = self._constraints(theta, rows, aux)
        np.add(y.nll, nll_c, out=out.nll)
        np.add(y.grad, grad_c, out=out.grad)
        if not hessian:
            return
        # What fisher() needs, should a row's Hessian not be positive definite.
        out.jac[:] = y.jac_bins
        out.weight[:] = y.weight
        out.curvature[:] = hess_c
        # Second derivatives contracted with c = 1 - n/nu, off the diagonal, as U rho^T plus
        # its transpose with U = c (A' F + A m / 2): A' F rho_q = A' m_q where g_q != 0. In a
        # sample-bin with exactly one zero factor only one of m_p rho_q, m_q rho_p survives,
        # so there it counts whole; the A' m terms against the zero factor are added apart.
        # U and rho carry w J / 2 and J in N more columns, so that the same product holds
        # J W J^T too (see compiled.yields). The product is single precision (kernel.PRODUCT);
        # assemble() writes the double-precision result (plus the transpose, the diagonal)
        # in one pass.
        second = np.matmul(y.u, y.rho.transpose(0, 2, 1))
        has_zero = y.zero_q >= 0
        if has_zero.any():
            r, k = np.nonzero(has_zero)
            np.add.at(second, (r, self.hs_par[k], y.zero_q[r, k]), y.zero_value[r, k])
        kernel.assemble(second, y.diag, hess_c, out.hess)

    def nll(self, theta: np.ndarray, rows: np.ndarray, main: np.ndarray, aux: np.ndarray):
        """-log L only (R,), for line searches (in blocks of tile_rows rows)."""
        if theta.shape[0] > self.tile_rows:
            return np.concatenate(
                [self.nll(theta[t], rows[t], main[t], aux[t]) for t in self._tiles(theta.shape[0])]
            )
        return self._yields(theta, rows, main).nll + self._constraints(theta, rows, aux)[0]

    def nll_moved(
        self,
        base: np.ndarray,
        owner: np.ndarray,
        theta: np.ndarray,
        rows: np.ndarray,
        main: np.ndarray,
        aux: np.ndarray,
    ) -> np.ndarray:
        """-log L (K,) at theta (K, P), each row differing from base[owner[k]] (base: (R, P),
        rows/main/aux: per row of base) in a few normsys/histosys parameters only.

        The yields at each distinct base row are computed once; a moved row changes them only
        in the sample-bins its moved parameters touch: the additive part by the change of the
        histosys shifts, the factor by the ratio of the new to the old normsys factor. The
        value is that of nll() at theta up to rounding (tested). Rows that move another kind
        of parameter, or whose old factor is zero, are evaluated by nll() in full.
        """
        K = theta.shape[0]
        out = np.empty(K)
        if K == 0:
            return out
        used, local = np.unique(owner, return_inverse=True)
        th0 = base[used][local]
        model_rows, k_main, k_aux = rows[owner], main[owner], aux[owner]
        moved = theta != th0
        full = moved[:, self.lin_idx].any(axis=1)
        y = self._yields(base[used], rows[used])
        additive, factor = y.additive, y.factor
        A, F = additive[local], factor[local]
        rows_moved, pars_moved = np.nonzero(moved)
        ns_k, ns_j = _pairs_of(rows_moved, pars_moved, *self.ns_by_par)
        hs_k, hs_j = _pairs_of(rows_moved, pars_moved, *self.hs_by_par)
        kernel.moved(
            np.ascontiguousarray(theta, dtype=float), th0,
            np.ascontiguousarray(model_rows, dtype=np.int64), A, F, full,
            ns_k, ns_j, self._ns_code, self.ns_par, self.ns_sb, self.ns_hi, self.ns_lo,
            self.ns_unique_coef, self.ns_spread,
            hs_k, hs_j, self._hs_code, self.hs_par, self.hs_sb, self.hs_up, self.hs_down,
        )  # fmt: skip
        nu = (A * F) @ self.sum_to_bins
        out[:] = kernel.poisson_nll(nu, k_main) + self._constraints(theta, model_rows, k_aux)[0]
        if full.any():
            out[full] = self.nll(theta[full], model_rows[full], k_main[full], k_aux[full])
        return out

    def _constraints(self, theta: np.ndarray, rows: np.ndarray, aux: np.ndarray):
        """-log of the constraint terms (R,) with gradient and Hessian diagonal (R, P). The
        Poisson terms are computed on the parameters some model constrains so only."""
        gauss, sigma = self.gauss[rows], self.sigma[rows]
        pull = (theta - aux) / sigma
        g_nll = 0.5 * pull**2 + np.log(sigma) + 0.5 * LOG_2PI
        nll = np.where(gauss, g_nll, 0.0).sum(axis=1)
        grad = np.where(gauss, pull / sigma, 0.0)
        hess = np.where(gauss, 1.0 / sigma**2, 0.0)
        cols = self.poisson_cols
        if cols.size:
            poisson = self.poisson[rows][:, cols]
            p_nll, p_grad, p_hess = _poisson_constraint(
                theta[:, cols], aux[:, cols], self.tau[rows][:, cols]
            )
            nll += np.where(poisson, p_nll, 0.0).sum(axis=1)
            grad[:, cols] += np.where(poisson, p_grad, 0.0)
            hess[:, cols] += np.where(poisson, p_hess, 0.0)
        return nll, grad, hess


def _slot_labels(labels: list[str], slices) -> list[str]:
    """labels with the slots of each (name, slice) named: the name, or name[i] for the
    components of a parameter of several."""
    for name, sl in slices:
        if sl.stop - sl.start == 1:
            labels[sl.start] = name
        else:
            for i in range(sl.start, sl.stop):
                labels[i] = f"{name}[{i - sl.start}]"
    return labels


def _histosys_data(data: list, key: str, sample) -> np.ndarray:
    """The key ("hi_data" or "lo_data") lists of a sample's histosys modifiers' data as one
    (modifiers, bins) float array: read end to end (np.fromiter), three times faster than
    np.array of the nested lists; ModelError where a list has another length than the
    sample's nominal."""
    n = len(sample.nominal)
    lists = [d[key] for d in data]
    try:
        if set(map(len, lists)) == {n}:
            flat = np.fromiter(chain.from_iterable(lists), dtype=float, count=len(lists) * n)
            return flat.reshape(len(lists), n)
    except (TypeError, ValueError):
        pass
    raise ModelError(
        f"a histosys of sample {sample.name!r} in channel {sample.channel!r} does not have {n} bins"
    )


def _code4_by_column(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """code4 coefficients (B, U, 6) of the entries hi, lo (B, U), computed once for the
    columns every model shares (the background's: most of them) and per model elsewhere."""
    B, U = hi.shape
    same = ((hi == hi[:1]) & (lo == lo[:1])).all(axis=0)
    coef = np.empty((B, U, 6))
    coef[:, same] = interpolation.code4_coefficients(hi[0, same], lo[0, same], last=True)
    vary = ~same
    if vary.any():
        coef[:, vary] = interpolation.code4_coefficients(hi[:, vary], lo[:, vary], last=True)
    return coef


def _by_parameter(par: np.ndarray, npars: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of each parameter: (pair indices ordered by parameter, where each
    parameter's run starts (npars + 1,))."""
    order = np.argsort(par, kind="stable")
    return order, np.searchsorted(par[order], np.arange(npars + 1))


def _pairs_of(rows: np.ndarray, pars: np.ndarray, order: np.ndarray, start: np.ndarray):
    """(row, pair) for every pair of each (row, parameter) given: the pairs of parameter p
    are order[start[p]:start[p + 1]]."""
    counts = start[pars + 1] - start[pars]
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    first = np.repeat(start[pars] - (np.cumsum(counts) - counts), counts)
    return np.repeat(rows, counts), order[first + np.arange(total)]


def _poisson_constraint(theta: np.ndarray, aux: np.ndarray, tau: np.ndarray):
    """-log Poisson(aux | tau * theta) with its first two derivatives in theta.

    Written as aux * (x - log1p(x)) with x = tau*theta/aux - 1 plus a constant, so that a
    constraint with tau ~ 1e11 still resolves changes of -log L far below one unit.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = aux / tau  # theta at which the constraint is minimal
        x = (theta - centre) / centre
        shape = np.where(aux > 0, aux * (x - np.log1p(x)), tau * theta)
        nll = shape + _poisson_constant(aux)
        grad = tau * (theta - centre) / theta
        hess = aux / theta**2
    return nll, grad, hess


def _poisson_constant(a: np.ndarray) -> np.ndarray:
    """a - a log a + log Gamma(a + 1), accurate for large a (Stirling series)."""
    a = np.asarray(a, dtype=float)
    big = a > 1e5
    safe = np.where(big, 1.0, np.maximum(a, 1e-300))
    direct = np.where(a > 0, safe - safe * np.log(safe) + gammaln(safe + 1.0), 0.0)
    ab = np.where(big, a, 1.0)
    stirling = 0.5 * np.log(2.0 * np.pi * ab) + 1.0 / (12.0 * ab) - 1.0 / (360.0 * ab**3)
    return np.where(big, stirling, direct)
