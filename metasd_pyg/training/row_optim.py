r"""Adagrad for row-wise (sparse) gradients, applied with row gathers and scatters.

The row-wise engine (:mod:`metasd_pyg.training.engine`) hands the optimiser
coalesced sparse COO gradients: rows :math:`\mathcal U` of a table and their
values :math:`G \in \mathbb R^{|\mathcal U| \times d}`. Adagrad's update of
those rows (Duchi, Hazan, Singer 2011; the optimiser of the paper and of kbc)
is

.. math::
    S_{\mathcal U} \leftarrow S_{\mathcal U} + G \odot G, \qquad
    W_{\mathcal U} \leftarrow W_{\mathcal U} - \eta_t\,
    \frac{G}{\sqrt{S_{\mathcal U}} + \epsilon},
    \qquad \eta_t = \frac{\eta}{1 + (t - 1)\,\delta},

and rows outside :math:`\mathcal U` do not change. :class:`torch.optim.Adagrad`
computes the same through sparse-tensor arithmetic (a sparse add into the
accumulator, ``sparse_mask`` to read it back, a sparse add into the table),
which costs more than adding into the accumulator's rows, gathering them
and adding the step into the table's rows (``index_add_`` / ``index_select``),
which is what :class:`RowAdagrad` does. Dense gradients
take the ordinary dense update. The state (``sum``, ``step``) and the
parameter groups are :class:`torch.optim.Adagrad`'s, so checkpoints of either
load into the other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class RowAdagrad(torch.optim.Adagrad):
    """:class:`torch.optim.Adagrad` with a row-wise update for sparse gradients.

    Same arguments, state and results as :class:`torch.optim.Adagrad` (tested
    against it to float tolerance: the accumulator is torch's to the bit, the
    step is scaled by the learning rate before it is added, where torch scales
    it in the addition); ``weight_decay`` is refused with sparse gradients, as
    torch does.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None  # type: ignore[override]
             ) -> float | None:
        """One Adagrad step over every parameter with a gradient.

        Args:
            closure: Re-evaluates the model and returns the loss (optional).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                state["step"] += 1
                clr = lr / (1 + (float(state["step"]) - 1) * lr_decay)
                if grad.is_sparse and grad.sparse_dim() != 1:
                    grad = grad.to_dense()  # not row-sparse: the (equivalent) dense update
                if grad.is_sparse:
                    if group["weight_decay"] != 0:
                        raise RuntimeError("weight_decay option is not compatible with sparse "
                                           "gradients")
                    _row_update(p, grad.coalesce(), state["sum"], clr, eps)
                else:
                    if group["weight_decay"] != 0:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    _dense_update(p, grad, state["sum"], clr, eps)
        return loss


def _row_update(p: Tensor, grad: Tensor, acc: Tensor, clr: float, eps: float) -> None:
    """Adagrad on the rows of a coalesced sparse ``grad`` (module docstring).

    Seven passes over the ``|U| x d`` rows: ``G * G`` added into the
    accumulator's rows (``index_add_``), its new rows gathered, ``sqrt + eps``,
    the step ``-lr G / (...)``, and one ``index_add_`` of it into the table.
    Adding into the rows is cheaper than writing them back (``index_copy_``
    costs about three times an ``index_add_`` on a 2.5M-row table). A gradient
    of every row of the table (the relation tables of the row-wise engine)
    takes the dense update, without gathers.
    """
    rows, values = grad._indices()[0], grad._values()
    n = rows.numel()
    if n == 0:
        return
    if n == p.size(0) and int(rows[-1]) == n - 1:  # coalesced: sorted, unique, so all rows
        acc.add_(values * values)  # as the sparse path (the square rounded, then added)
        p.addcdiv_(values, acc.sqrt().add_(eps), value=-clr)
        return
    acc.index_add_(0, rows, values * values)  # rows are unique: acc[rows] += G * G
    s = acc.index_select(0, rows)
    step = torch.div(values, s.sqrt_().add_(eps), out=s).mul_(-clr)
    p.index_add_(0, rows, step)  # rows are unique: the same as writing p[rows] + step


def _dense_update(p: Tensor, grad: Tensor, acc: Tensor, clr: float, eps: float) -> None:
    """Adagrad on a whole table (as :class:`torch.optim.Adagrad`'s dense update)."""
    acc.addcmul_(grad, grad, value=1)
    p.addcdiv_(grad, acc.sqrt().add_(eps), value=-clr)
