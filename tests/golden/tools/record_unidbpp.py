#!/usr/bin/env python3
"""Record UniDB++ golden trajectories (bridge-golden/1) by running the OFFICIAL sampler code.

    python record_unidbpp.py SDE_UTILS_PY OUT_DIR

SDE_UTILS_PY is `UniDB/utils/sde_utils.py` of 2769433owo/UniDB-plusplus @b128385, checked out at run
time (not part of this repository), e.g.

    git --git-dir=<mirror> show b128385:UniDB/utils/sde_utils.py > /tmp/sde_utils.py

It is imported unchanged. Its unused top-level imports (tqdm, torchvision.utils, scipy.integrate) are
replaced by stand-ins: tqdm by the identity, `save_image` by a recorder of the state it is given (the
samplers' `save_states` branch saves the state after every step, which is how the trajectory is
read), scipy by an empty module. The network is the `x0-consistent` stand-in of the other UniDB++
files (tests/golden/README.md); every `torch.randn_like` draw is intercepted and saved.

Needs torch (CPU is enough). Records:
  unidbpp_euler_pf_ode.json            method euler, solver_type pf-ode (reverse_pf_ode), T = 100
  unidbpp_noise2_sde_S10.json          method noise-solver-2, sde (unidb_noise_sde_solver_2)
  unidbpp_noise2_mean_ode_S10.json     method noise-solver-2, mean-ode
  unidbpp_noise2_sde_S20_ginv1e-3.json the same at γ = 1e3, where the first step's ratio is small
  unidbpp_noise2_sde_S100.json         solver_step 100 (near ties in beta_inv_gamma's argmin)
Replay: `bridge replay tests/golden/unidbpp_*.json` (sdk/src/golden/unidbpp.rs).
"""
import importlib.util
import json
import math
import os
import sys
import tempfile
import types

import torch

SOURCE = "2769433owo/UniDB-plusplus @b128385: UniDB/utils/sde_utils.py class UniDB"
LAMBDA_SQUARE, T, EPS, SCHEDULE = 30, 100, 0.005, "cosine"
X0S = "x0s(x, c) = 0.6*x + 0.3*c + 0.05*sin(3*x)   (elementwise, float32)"


class Recorder:
    """What one run saw: network inputs/outputs/times, draws and saved states."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.noise, self.net_in, self.net_out, self.t_net, self.states = [], [], [], [], []


REC = None


def load_reference(path):
    tq = types.ModuleType("tqdm")
    tq.tqdm = lambda it, *a, **k: it
    tv = types.ModuleType("torchvision")
    tvu = types.ModuleType("torchvision.utils")
    tvu.save_image = lambda x, *a, **k: REC.states.append(x.detach().clone())
    tv.utils = tvu
    sp = types.ModuleType("scipy")
    sp.integrate = types.ModuleType("scipy.integrate")
    sys.modules.update({"tqdm": tq, "torchvision": tv, "torchvision.utils": tvu, "scipy": sp,
                        "scipy.integrate": sp.integrate})
    spec = importlib.util.spec_from_file_location("sde_utils", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def randn_like(x, *a, **k):
    z = torch.randn(x.shape, generator=REC.gen, dtype=x.dtype)
    REC.noise.append(z.clone())
    return z


def stand_in(sde):
    def net(x, mu, t, **kw):
        t = int(t)
        REC.net_in.append(x.clone())
        REC.t_net.append(t)
        if t == sde.T:
            out = torch.zeros_like(x)
        else:
            x0s = 0.6 * x + 0.3 * mu + 0.05 * torch.sin(3 * x)
            out = (x - (sde.m(t) * x0s + sde.n(t) * mu)) / sde.f_sigmas[t]
        REC.net_out.append(out.clone())
        return out
    return net


def arr(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def record(ref, method, solver_type, solver_step, gamma, seed, tolerance, tolerance_note, lean=False):
    global REC
    REC = Recorder(seed)
    torch.randn_like = randn_like
    sde = ref.UniDB(lambda_square=LAMBDA_SQUARE, gamma=gamma, T=T, solver_step=solver_step, method=method,
                    solver_type=solver_type, schedule=SCHEDULE, eps=EPS, device="cpu")
    g = torch.Generator().manual_seed(1000 + seed)
    mu = torch.rand((2, 3, 4, 4), generator=g, dtype=torch.float32)
    sde.set_mu(mu)
    sde.set_model(stand_in(sde))
    with tempfile.TemporaryDirectory() as d:
        cwd = os.getcwd()
        os.chdir(d)
        try:
            if method == "euler" and solver_type == "pf-ode":
                fn, func = sde.reverse_pf_ode, "reverse_pf_ode, sde_reverse_drift_2, reverse_pf_ode_step"
            elif method == "noise-solver-2":
                fn, func = sde.unidb_noise_sde_solver_2, "unidb_noise_sde_solver_2, delta_noise, beta_inv_gamma"
            else:
                raise ValueError(method)
            final = fn(mu.clone(), save_states=True)
        finally:
            os.chdir(cwd)
    step = T // (T if method == "euler" else solver_step)
    visited = list(range(T, 0, -step))
    assert len(REC.states) == len(visited), (len(REC.states), len(visited))
    assert torch.equal(REC.states[-1], final)
    ctab = lambda f: [float(f(t)) for t in range(T + 1)]
    doc = {
        "format": "bridge-golden/1",
        "producer": "libbridge tests/golden/tools/record_unidbpp.py (reference code imported unchanged; network "
                    "replaced by stand-in; torch.randn_like intercepted; states read through save_states)",
        "family": "unidb++",
        "variant": f"{method} {solver_type}" + ("" if method == "euler" else f" solver_step={solver_step}"),
        "source": f"{SOURCE} ({func}, ode_alpha_t, ode_alpha_t_gamma, ode_sigma_t, exp_minus_beta_t, m, n with "
                  "gamma); UniDB/models/denoising_model.py DenoisingModel.test (method/solver_type dispatch)",
        "dtype": "float32",
        "torch": torch.__version__,
        "params": {"lambda_square": LAMBDA_SQUARE, "lambda_square_effective": LAMBDA_SQUARE / 255, "T": T,
                   "schedule": SCHEDULE, "eps": EPS, "gamma": gamma, "solver_step": solver_step, "method": method,
                   "solver_type": solver_type},
        "parameterization": "network predicts noise eps (model(x_t, mu, t), integer t); score = -eps/f_sigma(t), "
                            "0 at t == T",
        "nfe": len(REC.net_out) if method != "euler" else T,
        "steps_visited": visited,
        "t_net_visited": REC.t_net,
        "stand_in": {"kind": "x0-consistent noise",
                     "formula": "x0s = 0.6*x + 0.3*mu + 0.05*sin(3*x); net_out = (x - (m[t]*x0s + n[t]*mu))/"
                                "f_sigmas[t] for t != T, 0 at t == T (float32; m, n with gamma)",
                     "x0s": X0S},
        "inputs": {"x_T": arr(mu), "cond": arr(mu)},
        "initial_state": "x_T = mu (no noise added)",
        "noise": [arr(z) for z in REC.noise],
        "noise_order": "every torch.randn_like draw in order; noise-solver-2: z1 then z2 every step (both unused "
                       "at t == T, z1 unused on the last step, both multiplied by 0 for mean-ode); euler pf-ode "
                       "draws none",
        **({} if lean else {"net_in": [arr(x) for x in REC.net_in], "net_out": [arr(x) for x in REC.net_out]}),
        "trajectory": [arr(x) for x in REC.states],
        "trajectory_note": "trajectory[i] = state after the step from steps_visited[i] (read through the "
                           "reference's save_states branch); last entry = final",
        "final": arr(final),
        "tables": {"t": list(range(T + 1)), "thetas_cumsum": [float(v) for v in sde.thetas_cumsum],
                   "dt": float(sde.dt), "m": ctab(sde.m), "f_sigmas": [float(v) for v in sde.f_sigmas],
                   "ode_alpha_t": ctab(sde.ode_alpha_t), "ode_alpha_t_gamma": ctab(sde.ode_alpha_t_gamma),
                   "ode_sigma_t": ctab(sde.ode_sigma_t),
                   "note": "float32 values from the reference object"},
        "tolerance": tolerance,
        "tolerance_note": tolerance_note,
    }
    return doc


def main():
    ref = load_reference(sys.argv[1])
    out = sys.argv[2]
    first_step = ("noise-solver-2's first step (t = T) multiplies by rho = A^gamma_s/A^gamma_T ~ 3.4e5 at gamma 1e7 "
                  "(A^gamma_T = c = 1/(gamma L^2)), in float32: rho*x + (1 - rho)*mu leaves rounding of ~3e-2 on "
                  "trajectory[0] that the reference carries on. A replay must evaluate that step in float32 in the "
                  "reference's order (libbridge does: max_rel_err 7e-7); exact arithmetic is off by ~3e-2.")
    runs = [
        ("unidbpp_euler_pf_ode.json", "euler", "pf-ode", 100, 1e7, 11,
         "libbridge's float64 coefficients against the float32 reference: max_rel_err 9e-7"),
        ("unidbpp_noise2_sde_S10.json", "noise-solver-2", "sde", 10, 1e7, 12, first_step),
        ("unidbpp_noise2_mean_ode_S10.json", "noise-solver-2", "mean-ode", 10, 1e7, 13, first_step),
        ("unidbpp_noise2_sde_S20_ginv1e-3.json", "noise-solver-2", "sde", 20, 1e3, 14,
         "gamma 1e3: c = 0.072, the first step's ratio is small; libbridge's float64 coefficients (the "
         "intermediate time from beta_inv_gamma included): max_rel_err 1.2e-6"),
        ("unidbpp_noise2_sde_S100.json", "noise-solver-2", "sde", 100, 1e7, 15,
         first_step + " solver_step 100 puts the intermediate target halfway between two grid times, "
         "so beta_inv_gamma's argmin is a near tie (margin ~2e-6 in tau near t = 73); libbridge evaluates it in "
         "float64 and picks the reference's index (max_rel_err 1.7e-6). net_in/net_out omitted for size.", True),
    ]
    only = sys.argv[3:] or None
    for name, method, st, steps, gamma, seed, note, *lean in runs:
        if only and name not in only:
            continue
        doc = record(ref, method, st, steps, gamma, seed, 1e-5, note, bool(lean and lean[0]))
        with open(os.path.join(out, name), "w") as f:
            json.dump(doc, f)
        print(name, "nfe", doc["nfe"], "calls at", doc["t_net_visited"][:8], "...")


if __name__ == "__main__":
    main()
