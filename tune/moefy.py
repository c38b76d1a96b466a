"""Step 2, `tune moefy`: split each dense FFN into a shared group and routed experts of different widths, and
distil a router per layer.

Method (after MoEfication, Zhang et al., ACL Findings 2022, with a shared group and heterogeneous widths):
1. Importance of neuron j for a token: |h_j| * ||down[:, j]|| (its contribution's size to the FFN output).
2. Shared group: the `shared` neurons most often among a token's top 10% by importance.
3. The other neurons are clustered by co-activation: balanced k-means (cosine, equal sizes) on their importance
   patterns over the calibration tokens, into wide experts; the least coherent wide clusters are split again
   (balanced 2-means, ...) into narrow experts -> group 0 (wide) and group 1 (narrow).
4. Router (per layer, [E, D]): trained on the layer's own inputs to minimise the relative error of the MoE output
   (sigmoid weights on the top-k experts, the engine's gating) against the dense FFN output, plus a BCE term that
   teaches it each token's top-k experts by true contribution size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tune.errors import TuneError


@dataclass(frozen=True)
class MoEShape:
    """`shared` neurons always on; routed `groups` [(count, width)], widest first; `top_k` of all routed."""

    shared: int
    groups: tuple[tuple[int, int], ...]
    top_k: int

    @property
    def widths(self) -> list[int]:
        return [w for c, w in self.groups for _ in range(c)]

    @property
    def n_experts(self) -> int:
        return sum(c for c, _ in self.groups)

    def label(self) -> str:
        g = "+".join(f"{c}x{w}" for c, w in self.groups)
        return f"shared {self.shared} + {g}, top-{self.top_k}"


def make_shape(ffn_width: int, shared: int, n_wide: int, n_narrow: int, top_k: int, ratio: int = 2,
               multiple: int = 32) -> MoEShape:
    """A shape covering `ffn_width` neurons: narrow width w (a multiple of `multiple`, for GGUF quant blocks),
    wide width ratio * w; the shared group takes what is left. Raises TuneError when it does not fit."""
    if n_narrow % ratio:
        raise TuneError(f"--narrow ({n_narrow}) must be a multiple of the width ratio {ratio}")
    units = n_wide * ratio + n_narrow
    w = (ffn_width - shared) // units // multiple * multiple
    if w <= 0 or top_k > n_wide + n_narrow:
        raise TuneError(f"shape shared={shared}, {n_wide} wide + {n_narrow} narrow experts, top-{top_k} does not fit "
                        f"an FFN of {ffn_width}; use fewer experts or a smaller shared group")
    return MoEShape(ffn_width - units * w, ((n_wide, ratio * w), (n_narrow, w)) if n_wide else ((n_narrow, w),),
                    top_k)


def importance(h: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """[N, F] |h| * column norms of down [D, F]."""
    return h.float().abs() * down.norm(dim=0)[None, :]


def shared_neurons(imp: torch.Tensor, n: int, top_frac: float = 0.1) -> torch.Tensor:
    """Indices of the `n` neurons most often in a token's top `top_frac` by importance (ties: total importance)."""
    k = max(1, int(imp.shape[1] * top_frac))
    top = torch.topk(imp, k, dim=1).indices
    freq = torch.zeros(imp.shape[1]).index_add_(0, top.reshape(-1), torch.ones(top.numel()))
    score = freq + imp.sum(0) / (imp.sum() + 1e-9)  # the second term only breaks ties
    return torch.topk(score, n).indices.sort().values if n else torch.zeros(0, dtype=torch.long)


def balanced_assign(sim: np.ndarray, size: int) -> np.ndarray:
    """Each row to one column, every column exactly `size` rows, preferring high similarity (greedy rounds)."""
    n, k = sim.shape
    labels = np.full(n, -1)
    cap = np.full(k, size)
    while (labels < 0).any():
        free = np.flatnonzero(labels < 0)
        s = sim[free].copy()
        s[:, cap == 0] = -np.inf
        choice = s.argmax(1)
        best = s[np.arange(len(free)), choice]
        order = np.lexsort((-best, choice))  # by cluster, best first
        ch = choice[order]
        start = np.searchsorted(ch, np.arange(k))
        rank = np.arange(len(order)) - start[ch]
        take = rank < cap[ch]
        labels[free[order[take]]] = ch[take]
        np.subtract.at(cap, ch[take], 1)
    return labels


def balanced_kmeans(feat: torch.Tensor, k: int, iters: int = 12, seed: int = 0) -> np.ndarray:
    """Cluster rows of `feat` [n, m] (n divisible by k) into k equal clusters by cosine similarity."""
    f = torch.nn.functional.normalize(feat.float(), dim=1).numpy()
    n = f.shape[0]
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    cent = f[rng.choice(n, k, replace=False)]
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        new = balanced_assign(f @ cent.T, n // k)
        if (new == labels).all():
            break
        labels = new
        for c in range(k):
            v = f[labels == c].mean(0)
            cent[c] = v / (np.linalg.norm(v) + 1e-9)
    return labels


def split_layer(h: torch.Tensor, down: torch.Tensor, shape: MoEShape, seed: int = 0) -> np.ndarray:
    """The neuron order [shared | wide experts | narrow experts] ([F] int64, a permutation) for one layer."""
    imp = importance(h, down)
    shared = shared_neurons(imp, shape.shared)
    rest = np.setdiff1d(np.arange(imp.shape[1]), shared.numpy())
    feat = imp[:, rest].T  # [R, N]: each neuron's importance pattern over the tokens
    (n_w, w_w), *narrow = shape.groups if len(shape.groups) > 1 else ((0, 0), *shape.groups)
    n_n, w_n = narrow[0] if narrow else (0, 1)
    ratio = w_w // w_n if n_w else 1
    n_coarse = n_w + n_n // ratio
    labels = balanced_kmeans(feat, n_coarse, seed=seed)
    clusters = [rest[labels == c] for c in range(n_coarse)]
    if n_w and n_n:
        fn = torch.nn.functional.normalize(feat.float(), dim=1)
        coherence = [float((fn[labels == c] @ fn[labels == c].mean(0)).mean()) for c in range(n_coarse)]
        to_split = set(np.argsort(coherence)[: n_n // ratio].tolist())  # the least coherent clusters
        wide = [clusters[c] for c in range(n_coarse) if c not in to_split]
        fine = []
        for c in sorted(to_split):
            sub = balanced_kmeans(imp[:, clusters[c]].T, ratio, seed=seed)
            fine += [clusters[c][sub == s] for s in range(ratio)]
        clusters = wide + fine
    return np.concatenate([shared.numpy()] + clusters).astype(np.int64)


def expert_outputs(h: torch.Tensor, down: torch.Tensor, shape: MoEShape) -> tuple[torch.Tensor, torch.Tensor]:
    """For permuted h [N, F] and down [D, F]: the shared group's output [N, D] and each expert's [N, E, D]."""
    h = h.float()
    s = shape.shared
    y_shared = h[:, :s] @ down[:, :s].T
    outs, at = [], s
    for w in shape.widths:
        outs.append(h[:, at:at + w] @ down[:, at:at + w].T)
        at += w
    return y_shared, torch.stack(outs, 1)


@dataclass
class LayerStats:
    """Per token n, with Y_n [E, D] the experts' outputs, r_n = dense output - shared output:
    gram G_n = Y_n Y_n^T [E, E], b_n = Y_n r_n [E], c_n = |r_n|^2, t2_n = |dense output|^2.
    The MoE output's squared error for expert weights w is w^T G w - 2 w^T b + c: routers train on these
    (O(E^2) a token instead of O(E D))."""

    gram: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    t2: torch.Tensor

    @property
    def contrib(self) -> torch.Tensor:
        """[N, E] the norm of each expert's output."""
        return torch.diagonal(self.gram, dim1=1, dim2=2).clamp_min(0).sqrt()

    def sq_error(self, w: torch.Tensor) -> torch.Tensor:
        return (torch.einsum("ne,nef,nf->n", w, self.gram, w) - 2 * (w * self.b).sum(-1) + self.c).clamp_min(0)

    def rel_error(self, w: torch.Tensor) -> float:
        """Mean over tokens of |MoE output - dense output| / |dense output|."""
        return float((self.sq_error(w).sqrt() / self.t2.clamp_min(1e-12).sqrt()).mean())


def layer_stats(h: torch.Tensor, down: torch.Tensor, shape: MoEShape, chunk: int = 512) -> LayerStats:
    """`LayerStats` of permuted h [N, F] / down [D, F], computed in token chunks (memory O(chunk E D))."""
    parts = []
    for i in range(0, h.shape[0], chunk):
        ys, ye = expert_outputs(h[i:i + chunk], down, shape)
        r = ye.sum(1)
        parts.append((torch.einsum("ned,nfd->nef", ye, ye), torch.einsum("ned,nd->ne", ye, r), r.pow(2).sum(-1),
                      (ys + r).pow(2).sum(-1)))
    return LayerStats(*(torch.cat(p) for p in zip(*parts)))


def topk_weights(logits: torch.Tensor, k: int, unit: bool = False) -> torch.Tensor:
    """[N, E]: sigmoid(logit) (or 1) on each token's top-k experts, 0 elsewhere (the engine's sigmoid gating)."""
    idx = torch.topk(logits, k, dim=-1).indices
    mask = torch.zeros_like(logits).scatter_(-1, idx, 1.0)
    return mask if unit else mask * torch.sigmoid(logits)


def moe_output(logits: torch.Tensor, y_shared: torch.Tensor, y_exp: torch.Tensor, k: int,
               unit: bool = False) -> torch.Tensor:
    """Shared output + sum over each token's top-k experts of sigmoid(logit) (or 1) times the expert output."""
    return y_shared + torch.einsum("ne,ned->nd", topk_weights(logits, k, unit), y_exp)


def rel_error(y: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over tokens of ||y - target|| / ||target||."""
    return float(((y - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-6)).mean())


def train_router(x: torch.Tensor, st: LayerStats, k: int, steps: int = 300, lr: float = 2e-2, bce: float = 0.1,
                 seed: int = 0) -> torch.Tensor:
    """Router [E, D] distilled on x [N, D] so that the MoE output matches the dense output (see module doc)."""
    gen = torch.Generator().manual_seed(seed)
    x = x.float()
    labels = torch.zeros_like(st.b).scatter_(-1, torch.topk(st.contrib, k, -1).indices, 1.0)
    # start from the ridge-regression map x -> (+-4 label logits), so the first steps already route sensibly
    xtx = x.T @ x + 1e-3 * torch.eye(x.shape[1]) * x.pow(2).sum() / x.shape[0]
    router = torch.linalg.solve(xtx, x.T @ (labels * 8 - 4)).T.contiguous().requires_grad_(True)
    opt = torch.optim.Adam([router], lr=lr)
    scale = st.t2.mean()
    batch = min(2048, x.shape[0])
    for _ in range(steps):
        i = torch.randint(0, x.shape[0], (batch,), generator=gen)
        logits = x[i] @ router.T
        sub = LayerStats(st.gram[i], st.b[i], st.c[i], st.t2[i])
        loss = sub.sq_error(topk_weights(logits, k)).mean() / scale
        loss = loss + bce * torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return router.detach()


@dataclass
class LayerResult:
    perm: np.ndarray  # [F] neuron order
    router: torch.Tensor  # [E, D]
    heldout_error: float  # mean relative error of the FFN output on held-out tokens
    oracle_error: float  # same with each token's true top-k experts at weight 1 (what routing could reach)
    active_neurons: float  # mean per held-out token: shared + widths of the chosen experts


def moefy_layer(calib_x: torch.Tensor, calib_h: torch.Tensor, held_x: torch.Tensor, held_h: torch.Tensor,
                down: torch.Tensor, shape: MoEShape, steps: int = 300, seed: int = 0) -> LayerResult:
    """One layer: split, distil the router on calibration tokens, measure on held-out tokens."""
    perm = split_layer(calib_h, down, shape, seed)
    p = torch.from_numpy(perm)
    dp = down[:, p]
    router = train_router(calib_x, layer_stats(calib_h[:, p], dp, shape), shape.top_k, steps=steps, seed=seed)
    held = layer_stats(held_h[:, p], dp, shape)
    logits = held_x.float() @ router.T
    err = held.rel_error(topk_weights(logits, shape.top_k))
    oracle = held.rel_error(topk_weights(held.contrib, shape.top_k, unit=True))
    chosen = torch.topk(logits, shape.top_k, -1).indices
    widths = torch.tensor(shape.widths, dtype=torch.float32)
    active = float(shape.shared + widths[chosen].sum(-1).mean())
    return LayerResult(perm, router, err, oracle, active)


def moefy_model(profile: dict, downs: list[torch.Tensor], shape: MoEShape, steps: int = 300, seed: int = 0,
                progress=None) -> list[LayerResult]:
    """Every layer of a profile (`tune.profile` output); `downs[i]` is layer i's down weight [D, F]."""
    c, h = profile["calib"], profile["heldout"]
    out = []
    for i, down in enumerate(downs):
        out.append(moefy_layer(c["x"][i], c["h"][i], h["x"][i], h["h"][i], down, shape, steps, seed + i))
        if progress:
            progress(1)
    return out


def apply_moe(model, perms: list[np.ndarray], routers: list[torch.Tensor], shape: MoEShape) -> None:
    """Turn the dense FFNs of a `TuneModel` into `MoEFFN`s (neurons permuted, routers set), in place."""
    from tune.model import MoEFFN

    for blk, perm, router in zip(model.blocks, perms, routers):
        f = blk.ffn
        p = torch.as_tensor(perm, dtype=torch.long)
        if f.n_experts:
            raise TuneError("the model is already an MoE; load the dense parent again")
        ffn = MoEFFN(f.gate[p].contiguous(), f.up[p].contiguous(), f.down[:, p].contiguous(), f.act_name,
                     shape.shared, shape.widths, torch.as_tensor(router, dtype=torch.float32), shape.top_k)
        ffn.router.requires_grad_(False)
        ffn.perm = p
        blk.ffn = ffn


def neuron_topk_error(h: torch.Tensor, down: torch.Tensor, frac: float, per_token: bool = True) -> float:
    """Reference without experts: keep each token's top `frac` neurons by importance (or, with per_token=False,
    one fixed set: the neurons of highest mean importance) and measure the FFN output's mean relative error."""
    h = h.float()
    imp = importance(h, down)
    k = int(round(h.shape[1] * frac))
    if per_token:
        idx = torch.topk(imp, k, dim=1).indices
    else:
        idx = torch.topk(imp.mean(0), k).indices.expand(h.shape[0], k)
    mask = torch.zeros_like(h).scatter_(1, idx, 1.0)
    return rel_error((h * mask) @ down.T, h @ down.T)
