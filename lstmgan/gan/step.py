"""One GAN training step: `gan_step` is the math; `FastStep` runs it with static buffers, the data and the
epoch's permutation on the device, and (on CUDA) a captured graph per batch shape."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmgan.config import GanConfig

METERS = ("d_loss", "g_loss", "d_real", "d_fake")  # what gan_step returns, in the meter buffer's order


def gan_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             real: Tensor, z: Tensor) -> dict[str, Tensor]:
    """One generator step then one discriminator step; returns losses and mean D outputs."""
    n = len(real)
    targets = torch.cat([torch.ones(n, 1, device=real.device), torch.zeros(n, 1, device=real.device)])

    # Generator: D is fixed (no gradients into D's weights, which the D step would discard anyway).
    D.requires_grad_(False)
    fake = G(z)
    g_loss = F.binary_cross_entropy_with_logits(D(fake), targets[:n])
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    D.requires_grad_(True)

    # Discriminator: real vs detached fakes, as one batch (larger matmuls); with equal halves the mean
    # over both is exactly (loss on real + loss on fake) / 2.
    logits = D(torch.cat([real, fake.detach()]))
    d_loss = F.binary_cross_entropy_with_logits(logits, targets)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    probs = torch.sigmoid(logits.detach())
    return {"d_loss": d_loss, "g_loss": g_loss, "d_real": probs[:n].mean(), "d_fake": probs[n:].mean()}


def make_optimizers(G: nn.Module, D: nn.Module, cfg: GanConfig, *, capturable: bool
                    ) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    # Fused Adam: one kernel per step for all parameters, on the CPU as on CUDA (about 1.2× per batch on the
    # CPU); capturable keeps its step count on the device, which a CUDA graph needs (CUDA only).
    kw: dict[str, Any] = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "fused": True, "capturable": capturable}
    return torch.optim.Adam(G.parameters(), **kw), torch.optim.Adam(D.parameters(), **kw)


class FastStep:
    """`gan_step` over static buffers: the training set and the epoch's permutation on the device, the
    batch index copied into a fixed buffer, z drawn inside the step, the meters summed on the device
    (read once per log row: no host sync inside an epoch).

    With capture=True (CUDA) the whole step (both forward/backward passes and both fused, capturable Adam
    updates) is captured once per batch shape as a CUDA graph and replayed: about 115 kernel launches
    become one. z then comes from the CUDA generator through graph-safe Philox offsets, which advance the
    generator as eager draws do: a graphed run's z is expected to equal an eager one's, not yet measured
    (tests/test_cuda.py compares the first steps with torch.equal). With capture=False the very same body
    runs eagerly and draws z exactly as the plain loop does.

    Loading weights or optimizer state drops the captured graphs (the next step captures again), and
    restores the optimizers' `capturable` and `fused` flags as built: `Optimizer.load_state_dict` would
    otherwise take them from the checkpoint, and a CPU checkpoint's capturable=False breaks the capture.
    torch.compile is not used: the graph already removes the launch overhead that dominates at this size,
    and compile would add tens of seconds of start-up, a recompile for the short last batch, and one more
    thing to break on a cluster.
    """

    def __init__(self, G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 images: Tensor, latent_dim: int, batch_size: int, *, capture: bool) -> None:
        self.G, self.D, self.opt_g, self.opt_d = G, D, opt_g, opt_d
        self.images, self.latent_dim, self.capture = images, latent_dim, capture
        self.device = images.device
        self.idx = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self.meters = torch.zeros(len(METERS), device=self.device)
        self.order = self.idx[:0]
        self.zs: dict[int, Tensor] = {}  # the last z drawn per batch shape
        self.size = 0  # the last step's batch size
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        for opt in (opt_g, opt_d):
            built = [{k: group[k] for k in ("capturable", "fused")} for group in opt.param_groups]
            opt.register_load_state_dict_post_hook(lambda o, built=built: self._after_optimizer_load(o, built))
        for module in (G, D):
            module.register_load_state_dict_post_hook(lambda *_: self.graphs.clear())

    def _after_optimizer_load(self, opt: torch.optim.Optimizer, built: list[dict[str, Any]]) -> None:
        """The loaded state's tensors are new (a graph would keep updating the old ones): drop the graphs;
        and keep the flags this step was built with, whatever the checkpoint's optimizer had."""
        self.graphs.clear()
        for group, flags in zip(opt.param_groups, built):
            group.update(flags)
            for p in group["params"]:  # capturable and fused keep Adam's step count beside the parameter
                st = opt.state.get(p, {})
                if (flags["capturable"] or flags["fused"]) and isinstance(st.get("step"), Tensor) \
                        and st["step"].device != p.device:
                    st["step"] = st["step"].to(p.device, torch.float32)

    def set_order(self, order: Tensor) -> None:
        """The epoch's permutation (drawn on the CPU from the run's seeded generator): one copy per epoch."""
        self.order = order.to(self.device)

    def step(self, start: int, size: int) -> None:
        """Train on the batch order[start:start + size]."""
        self.idx[:size].copy_(self.order[start:start + size])
        self.size = size
        if not self.capture:
            self._body(size)
            return
        if size not in self.graphs:
            self.graphs[size] = self._capture(size)
        self.graphs[size].replay()

    def _body(self, size: int) -> None:
        real = self.images[self.idx[:size]]
        z = torch.randn(size, self.latent_dim, device=self.device)
        self.zs[size] = z  # a graph's own buffer when captured: tests compare graphed and eager z
        stats = gan_step(self.G, self.D, self.opt_g, self.opt_d, real, z)
        self.meters.add_(torch.stack([stats[k].detach() for k in METERS]))

    @property
    def z(self) -> Tensor:
        """The last step's z."""
        return self.zs[self.size]

    def take_meters(self) -> list[float]:
        """The meters' sums since the last call (one host sync), then zero them."""
        sums = self.meters.tolist()
        self.meters.zero_()
        return sums

    def _capture(self, size: int) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream (lazy optimizer state, cuBLAS handles, autograd), capture, then put back
        everything the warm-up changed, in place (the graph holds these very tensors), so that capturing
        does not change the run: weights, BatchNorm statistics, optimizer state, meters (a row may be part-summed),
        the CUDA RNG.
        Call it after any checkpoint is loaded: loading replaces the optimizer's state tensors."""
        modules = [t for m in (self.G, self.D) for t in (*m.parameters(), *m.buffers())]
        saved = [t.detach().clone() for t in modules]
        opt_saved = {id(opt): {p: {k: v.clone() for k, v in st.items() if isinstance(v, Tensor)}
                               for p, st in opt.state.items()} for opt in (self.opt_g, self.opt_d)}
        meters = self.meters.clone()  # a row may be part-summed when a new batch shape (the last one) appears
        rng = torch.cuda.get_rng_state(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._body(size)
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.set_rng_state(rng, self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body(size)
        with torch.no_grad():
            for t, s in zip(modules, saved):
                t.copy_(s)
            for opt in (self.opt_g, self.opt_d):
                before = opt_saved[id(opt)]
                for p, st in opt.state.items():
                    for k, v in st.items():
                        if isinstance(v, Tensor):  # state a fresh optimizer lacks starts at zero (Adam's init)
                            v.copy_(before[p][k]) if p in before else v.zero_()
            self.meters.copy_(meters)
        return graph
