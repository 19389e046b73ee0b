"""Expected value of partial perfect information (EVPPI) by nonparametric regression.

A PSA gives, per sample, each strategy's net monetary benefit (NMB) and the values of the
parameters drawn for it. What it would be worth to learn a parameter, or a group of
them, exactly is

    EVPPI = E_phi[ max_d E(NMB_d | phi) ] - max_d E(NMB_d),

where E(NMB_d | phi) is estimated by regressing the samples' net benefits on phi (Strong,
Oakley & Brennan 2014, Med Decis Making 34:311-326; the method of SAVI and BCEA): a
penalised cubic regression spline for one parameter (BCEA's GAM) and a Gaussian process
with a linear mean for a group. The regression is on each strategy's net benefit minus
the reference strategy's, which removes the noise the strategies share (common random
numbers). Money is in the setting's currency, per patient.

The estimate is biased slightly upwards by the noise the regression cannot remove, and
it cannot exceed the EVPI of the same samples except by such noise (`evppi` caps nothing:
a value above the EVPI is a sign of too few samples).
"""

from __future__ import annotations

import numpy as np
from scipy import interpolate, linalg, optimize

_SPLINE_DEGREE = 3
_MAX_INTERIOR_KNOTS = 20
_PENALTIES = np.logspace(-8, 8, 65)  # relative to the trace ratio of the two matrices
_GP_FIT_SAMPLES = 250  # samples used to estimate the Gaussian process's hyperparameters
# Log of the shortest correlation length, in standard deviations of a parameter: below it
# the covariance of a subsample cannot tell signal from noise, and the fit to all the
# samples would then follow their noise.
_SHORTEST_LENGTH = float(np.log(0.25))


def evppi(net_benefit: np.ndarray, parameters: np.ndarray) -> float:
    """EVPPI per patient (money) of the parameters in the columns of `parameters`.

    `net_benefit` is samples x strategies (NMB at one willingness to pay, money per
    patient); `parameters` is samples x k (one column: a single parameter; several: a
    group learnt together). Columns that do not vary are ignored; if none varies the
    EVPPI is 0.
    """
    net_benefit = np.asarray(net_benefit, dtype=float)
    phi = varying_columns(parameters, len(net_benefit))
    if phi.shape[1] == 0 or net_benefit.shape[1] < 2:
        return 0.0
    reference = int(net_benefit.mean(axis=0).argmax())
    fitted = np.zeros_like(net_benefit)
    for d in range(net_benefit.shape[1]):
        if d != reference:
            fitted[:, d] = conditional_mean(phi, net_benefit[:, d] - net_benefit[:, reference])
    return _value_of_choosing(fitted)


def evppi_curve(costs: np.ndarray, effects: np.ndarray, parameters: np.ndarray, willingness_to_pay) -> np.ndarray:
    """EVPPI per patient (money) at each willingness to pay (money per QALY).

    `costs` and `effects` are samples x strategies (money and QALYs per patient). The
    increments of cost and QALYs over the first strategy are regressed once each, and
    the conditional mean NMB at any willingness to pay is their linear combination.
    """
    costs, effects = np.asarray(costs, dtype=float), np.asarray(effects, dtype=float)
    phi = varying_columns(parameters, len(costs))
    if phi.shape[1] == 0 or costs.shape[1] < 2:
        return np.zeros(len(willingness_to_pay))
    fitted_cost, fitted_effect = np.zeros_like(costs), np.zeros_like(effects)
    for d in range(1, costs.shape[1]):
        fitted_cost[:, d] = conditional_mean(phi, costs[:, d] - costs[:, 0])
        fitted_effect[:, d] = conditional_mean(phi, effects[:, d] - effects[:, 0])
    return np.array([_value_of_choosing(w * fitted_effect - fitted_cost) for w in willingness_to_pay])


def varying_columns(parameters: np.ndarray, samples: int) -> np.ndarray:
    """`parameters` as a samples x k array without the columns that do not vary."""
    phi = np.asarray(parameters, dtype=float).reshape(samples, -1)
    return phi[:, np.ptp(phi, axis=0) > 0]


def _value_of_choosing(fitted: np.ndarray) -> float:
    # fitted: conditional mean NMB of each strategy over a reference (whose column is 0).
    return float(max(0.0, fitted.max(axis=1).mean() - max(0.0, fitted.mean(axis=0).max())))


def conditional_mean(phi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """E(y | phi) at each sample: a penalised spline for one column of `phi`, a Gaussian
    process for several."""
    if np.ptp(y) == 0:
        return np.full_like(y, y.mean())
    if phi.shape[1] == 1:
        return penalised_spline(phi[:, 0], y)
    return gaussian_process(phi, y)


def penalised_spline(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fitted values of a cubic B-spline regression of y on x with a second-difference
    penalty (a P-spline), its smoothness chosen by generalised cross-validation."""
    unique = np.unique(x)
    if len(unique) <= _SPLINE_DEGREE + 1:
        return _group_means(x, y)
    interior = np.quantile(unique, np.linspace(0, 1, min(_MAX_INTERIOR_KNOTS, len(unique) // 4) + 2)[1:-1])
    knots = np.r_[[x.min()] * (_SPLINE_DEGREE + 1), np.unique(interior), [x.max()] * (_SPLINE_DEGREE + 1)]
    basis = interpolate.BSpline.design_matrix(np.clip(x, x.min(), x.max()), knots, _SPLINE_DEGREE).toarray()
    difference = np.diff(np.eye(basis.shape[1]), n=2, axis=0)
    gram, penalty, projected = basis.T @ basis, difference.T @ difference, basis.T @ y
    scale = np.trace(gram) / np.trace(penalty)
    best, best_score = None, np.inf
    for weight in _PENALTIES * scale:
        system = gram + weight * penalty
        coefficients = linalg.solve(system, projected, assume_a="pos")
        fitted = basis @ coefficients
        effective = np.trace(linalg.solve(system, gram, assume_a="pos"))
        score = len(y) * np.sum((y - fitted) ** 2) / max(len(y) - effective, 1.0) ** 2
        if score < best_score:
            best, best_score = fitted, score
    return best


def _group_means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    levels, index = np.unique(x, return_inverse=True)
    means = np.bincount(index, weights=y) / np.bincount(index)
    return means[index]


def gaussian_process(phi: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fitted values of a Gaussian-process regression of y on the columns of phi: a linear
    mean, a squared-exponential covariance with a length per column and a noise term, the
    hyperparameters by restricted maximum likelihood on at most `_GP_FIT_SAMPLES` samples."""
    x = _principal_components(phi)
    centre, spread = y.mean(), y.std()
    z = (y - centre) / spread
    fit_rows = np.arange(len(z))
    if len(z) > _GP_FIT_SAMPLES:
        fit_rows = np.sort(np.random.default_rng(seed).choice(len(z), _GP_FIT_SAMPLES, replace=False))
    start = np.r_[np.zeros(x.shape[1]), 0.0, np.log(0.5)]
    result = optimize.minimize(_restricted_likelihood, start, args=(x[fit_rows], z[fit_rows]), method="L-BFGS-B", options={"maxiter": 60},
                               bounds=[(_SHORTEST_LENGTH, 5.0)] * x.shape[1] + [(-6.0, 3.0), (-8.0, 2.0)])
    fitted = _posterior_mean(result.x, x, z)
    return centre + spread * fitted


def _principal_components(phi: np.ndarray) -> np.ndarray:
    # Standardised, then rotated onto the directions that vary: shares that sum to one
    # (Dirichlet draws) or parameters that move together would make the linear mean singular.
    z = (phi - phi.mean(axis=0)) / phi.std(axis=0)
    _, singular, directions = np.linalg.svd(z, full_matrices=False)
    kept = singular > 1e-8 * singular[0]
    scores = z @ directions[kept].T
    return scores / scores.std(axis=0)


def _covariance(log_theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    lengths, signal, noise = np.exp(log_theta[:-2]), np.exp(log_theta[-2]), np.exp(log_theta[-1])
    scaled = x / lengths
    squared = np.sum(scaled**2, axis=1)
    distance = np.maximum(squared[:, None] + squared[None, :] - 2 * scaled @ scaled.T, 0.0)
    return signal**2 * np.exp(-0.5 * distance), noise**2


def _restricted_likelihood(log_theta: np.ndarray, x: np.ndarray, z: np.ndarray) -> float:
    kernel, noise = _covariance(log_theta, x)
    design = np.c_[np.ones(len(z)), x]
    try:
        factor = linalg.cho_factor(kernel + noise * np.eye(len(z)))
    except linalg.LinAlgError:
        return 1e10
    solved_design, solved_z = linalg.cho_solve(factor, design), linalg.cho_solve(factor, z)
    information = design.T @ solved_design
    try:
        beta = linalg.solve(information, design.T @ solved_z, assume_a="pos")
    except linalg.LinAlgError:
        return 1e10
    residual = z - design @ beta
    quadratic = residual @ linalg.cho_solve(factor, residual)
    log_determinant = 2 * np.sum(np.log(np.diag(factor[0]))) + np.linalg.slogdet(information)[1]
    return 0.5 * (quadratic + log_determinant)


def _posterior_mean(log_theta: np.ndarray, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    kernel, noise = _covariance(log_theta, x)
    design = np.c_[np.ones(len(z)), x]
    factor = linalg.cho_factor(kernel + noise * np.eye(len(z)))
    beta = linalg.solve(design.T @ linalg.cho_solve(factor, design), design.T @ linalg.cho_solve(factor, z))
    return design @ beta + kernel @ linalg.cho_solve(factor, z - design @ beta)
