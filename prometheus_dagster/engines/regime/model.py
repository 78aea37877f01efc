"""Regime prototypes: a Gaussian mixture over standardised window features, each cluster
labelled from its characteristics, plus the transition matrix of the labels it produced on its
training history. Saved as plain JSON; inference is deterministic row by row (a row's result
never depends on which other rows share the call)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prometheus_dagster.core.errors import PrometheusError
from prometheus_dagster.engines.regime.config import (
    REGIME_LABELS,
    RISK_ON_LABELS,
    Labelling,
    RegimeConfig,
)
from prometheus_dagster.engines.regime.features import LOG_FEATURES, STRESS_SIGNS

Z_CLIP = 6.0
CHARACTERISTICS = ("stress", "trend_short", "trend_long", "drawdown")
CORRECTION_CHARACTERISTICS = ("drawdown_level", "drawdown_low_level", "ret_short_level")


class RegimeTrainingError(PrometheusError):
    """Not enough usable history to fit regime prototypes."""


@dataclass
class RegimeModel:
    features: list[str]
    log_features: list[str]             # features fitted on their logarithm
    mean: list[float]
    scale: list[float]
    weights: list[float]
    means: list[list[float]]            # (k, d) in z units
    precision_chol: list[list[list[float]]]  # (k, d, d)
    cluster_labels: list[str]
    cluster_characteristics: list[dict[str, float]]
    labels: list[str]                   # labels the model can produce, in REGIME_LABELS order
    transition: list[list[float]]       # P[from, to] over ``labels``
    temperature: float
    trained_through: str
    training_rows: int
    first_training_date: str
    embedding_dim: int
    embedding_seed: int
    window: int
    reference: dict                     # characteristic_reference of the training history
    labelling: dict                     # the labelling settings the clusters were named with
    outlier_distance: float             # beyond it from every prototype: label the day itself
    feature_weights: list[float] | None = None  # z multipliers (None: all 1, older versions)

    def label_days(self, frame: pd.DataFrame) -> list[str]:
        """Labels of rows named from their own characteristics (as clusters are named): for
        days outside the range of every prototype, such as a first crash after calm years."""
        days = day_characteristics(frame, self.reference)
        chars = [{k: float(v[i]) for k, v in days.items()} for i in range(len(frame))]
        return label_clusters(chars, self.labelling)

    def correction_days(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows whose drawdown from the peak is a correction (see ``Labelling``)."""
        if "drawdown" not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        rules = Labelling(**self.labelling)
        def column(name: str) -> np.ndarray:
            return frame[name].to_numpy(float) if name in frame.columns \
                else np.full(len(frame), np.nan)

        return np.array([in_correction(v, lo, t, rules) for v, lo, t in zip(
            column("drawdown"), column("drawdown_low"), column("ret_short"), strict=True)],
            dtype=bool)

    # --- persistence -------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegimeModel:
        return cls(**json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> RegimeModel:
        return cls.from_json(Path(path).read_text())

    # --- inference -----------------------------------------------------------------------------
    def standardise(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(z, missing mask): the model's features of ``frame`` in z units (clipped) times
        their weights; a missing value is set to the training mean (z = 0) and flagged."""
        x = transform(frame, self.features, self.log_features)
        missing = ~np.isfinite(x)
        z = (np.where(missing, np.asarray(self.mean), x) - np.asarray(self.mean)) \
            / np.asarray(self.scale)
        return np.clip(z, -Z_CLIP, Z_CLIP) * self.weight_vector(), missing

    def weight_vector(self) -> np.ndarray:
        return np.asarray(self.feature_weights if self.feature_weights is not None
                          else [1.0] * len(self.features), dtype=float)

    def component_log_density(self, z: np.ndarray) -> np.ndarray:
        """(n, k) log N(z | mu_k, Sigma_k), accumulated feature by feature (row-independent)."""
        n, d = z.shape
        means = np.asarray(self.means)
        chol = np.asarray(self.precision_chol)
        out = np.empty((n, len(self.weights)))
        for k in range(len(self.weights)):
            y = np.zeros((n, d))
            for j in range(d):
                y += (z[:, j] - means[k, j])[:, None] * chol[k, j, :][None, :]
            sq = np.zeros(n)
            for j in range(d):
                sq += y[:, j] * y[:, j]
            log_det = float(np.sum(np.log(np.diag(chol[k]))))
            out[:, k] = -0.5 * (d * np.log(2 * np.pi) + sq) + log_det
        return out

    def cluster_posterior(self, z: np.ndarray, temperature: float = 1.0
                          ) -> tuple[np.ndarray, np.ndarray]:
        """(posterior (n, k), Mahalanobis distances (n, k)); ``temperature`` > 1 divides the
        log-likelihoods first (a softer posterior for confidence)."""
        logd = self.component_log_density(z)
        d = z.shape[1]
        chol = np.asarray(self.precision_chol)
        log_det = np.array([np.sum(np.log(np.diag(c))) for c in chol])
        dist = np.sqrt(np.maximum(-2 * (logd - log_det[None, :]) - d * np.log(2 * np.pi), 0))
        a = np.log(np.asarray(self.weights))[None, :] + logd / temperature
        a = a - a.max(axis=1, keepdims=True)
        p = np.exp(a)
        return p / p.sum(axis=1, keepdims=True), dist

    def label_posterior(self, cluster_post: np.ndarray) -> np.ndarray:
        """(n, len(labels)) probabilities of each label (sum over its clusters)."""
        out = np.zeros((cluster_post.shape[0], len(self.labels)))
        for k, lab in enumerate(self.cluster_labels):
            out[:, self.labels.index(lab)] += cluster_post[:, k]
        return out

    def embedding(self, z: np.ndarray) -> np.ndarray:
        """Unit vectors in R^embedding_dim: z mapped by a fixed orthonormal basis (so cosine
        similarities are those of the standardised feature vectors)."""
        basis = embedding_basis(self.embedding_dim, len(self.features), self.embedding_seed)
        e = np.zeros((z.shape[0], self.embedding_dim))
        for j in range(z.shape[1]):
            e += z[:, j][:, None] * basis[:, j][None, :]
        norm = np.sqrt(np.sum(e * e, axis=1, keepdims=True))
        return np.where(norm > 0, e / np.where(norm > 0, norm, 1.0), 0.0)


def embedding_basis(dim: int, d: int, seed: int) -> np.ndarray:
    """(dim, d) matrix with orthonormal columns, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, max(d, 1))))
    return (q * np.sign(np.diag(r))[None, :])[:, :d]


def transform(frame: pd.DataFrame, features: list[str], log_features: list[str]) -> np.ndarray:
    """(n, d) model inputs: the features in order, logs where listed (non-positive -> NaN)."""
    cols = []
    for f in features:
        v = frame[f].to_numpy(dtype=float) if f in frame.columns else np.full(len(frame), np.nan)
        if f in log_features:
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.log(np.where(v > 0, v, np.nan))
        cols.append(v)
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0))


# --- fitting ---------------------------------------------------------------------------------
def select_features(features: pd.DataFrame, candidates: tuple[str, ...],
                    min_coverage: float) -> list[str]:
    """Model features present on at least ``min_coverage`` of the training sessions."""
    cols = [f for f in candidates if f in features.columns]
    if not len(features):
        return []
    return [f for f in cols if features[f].notna().mean() >= min_coverage]


def characteristic_reference(frame: pd.DataFrame, model_features: list[str],
                             stress_weights: dict[str, float]) -> dict:
    """What turns a day's features into characteristics, fixed on the training history: mean
    and sd of each characteristic feature (logs where listed), the stress weights (of the stress
    features the mixture uses, or of those present when it uses none) and the calm half's
    centre and scale of the stress index."""
    stress_features = [f for f in stress_weights if f in model_features] or list(stress_weights)
    ref: dict = {"features": {}, "stress_weights": {}, "calm_centre": 0.0, "calm_scale": 1.0}
    for f in (*stress_features, "ret_short", "ret_long", "drawdown"):
        if f in frame.columns and frame[f].notna().mean() > 0.5:
            v = transform(frame, [f], list(LOG_FEATURES))[:, 0]
            ok = np.isfinite(v)
            sd = float(np.std(v[ok]))
            ref["features"][f] = [float(np.mean(v[ok])), sd if sd > 0 else 1.0]
    ref["stress_weights"] = {f: stress_weights[f] for f in stress_features
                             if f in ref["features"] and stress_weights[f] > 0}
    stress = day_characteristics(frame, ref).get("stress")
    if stress is not None:
        ref["calm_centre"], ref["calm_scale"] = calm_reference(stress)
        ref["calm_log_levels"] = calm_log_levels(frame, ref, stress)
    return ref


def calm_log_levels(frame: pd.DataFrame, ref: dict, daily_stress: np.ndarray
                    ) -> dict[str, float]:
    """Median log level of each stress feature fitted on its logarithm (implied and realised
    vol, credit) over the calmer half of the training days: the anchor of a day's excess,
    which, unlike distances in the history's own dispersion, does not grow when the history
    holds calm years only."""
    ok = np.isfinite(daily_stress)
    calm = ok & (daily_stress <= np.median(daily_stress[ok])) if ok.any() else ok
    out = {}
    for f in ref["stress_weights"]:
        if f in LOG_FEATURES and f in frame.columns:
            v = transform(frame, [f], [f])[:, 0][calm]
            v = v[np.isfinite(v)]
            if len(v):
                out[f] = float(np.median(v))
    return out


def day_characteristics(frame: pd.DataFrame, ref: dict) -> dict[str, np.ndarray]:
    """Per row: stress (weighted mean of the stress features in z units), stress_vs_calm,
    excess (weighted mean log level of the log stress features above the calm half's
    median), trend_short, trend_long and drawdown depth (positive = deeper), where the data
    allow."""
    z = {}
    for f, (mean, sd) in ref["features"].items():
        v = transform(frame, [f], list(LOG_FEATURES))[:, 0] if f in frame.columns \
            else np.full(len(frame), np.nan)
        z[f] = (v - mean) / sd
    out: dict[str, np.ndarray] = {}
    weights = ref["stress_weights"]
    if weights:
        m = np.column_stack([STRESS_SIGNS.get(f, 1.0) * z[f] for f in weights])
        w = np.array(list(weights.values()))
        ok = np.isfinite(m)
        total = np.sum(np.where(ok, m, 0.0) * w, axis=1)
        norm = np.sum(ok * w, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["stress"] = np.where(norm > 0, total / np.where(norm > 0, norm, 1.0), np.nan)
        out["stress_vs_calm"] = (out["stress"] - ref["calm_centre"]) / ref["calm_scale"]
    anchors = ref.get("calm_log_levels") or {}
    if anchors:
        m = np.column_stack([transform(frame, [f], [f])[:, 0] - c for f, c in anchors.items()])
        w = np.array([weights[f] for f in anchors])
        ok = np.isfinite(m)
        norm = np.sum(ok * w, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["excess"] = np.where(norm > 0, np.sum(np.where(ok, m, 0.0) * w, axis=1)
                                     / np.where(norm > 0, norm, 1.0), np.nan)
    for name, f, sign in (("trend_short", "ret_short", 1), ("trend_long", "ret_long", 1),
                          ("drawdown", "drawdown", -1)):
        if f in z:
            out[name] = sign * z[f]
    for name in ("drawdown", "drawdown_low", "ret_short"):
        if name in frame.columns:
            out[f"{name}_level"] = frame[name].to_numpy(dtype=float)
    return out


def characteristics(frame: pd.DataFrame, responsibility: np.ndarray, ref: dict
                    ) -> list[dict[str, float]]:
    """Per cluster, the responsibility-weighted mean of its members' characteristics on the
    training history. Characteristic features need not be in the mixture (a slow drawdown
    still describes the clusters); one without data is left out."""
    # a correction is a day's state, not a prototype's: clusters are named without it
    days = {k: v for k, v in day_characteristics(frame, ref).items()
            if k not in CORRECTION_CHARACTERISTICS}
    out = []
    for k in range(responsibility.shape[1]):
        w = responsibility[:, k]
        ch: dict[str, float] = {}
        for name, v in days.items():
            ok = np.isfinite(v)
            if ok.any():
                ch[name] = float(np.sum(w[ok] * v[ok]) / max(np.sum(w[ok]), 1e-12))
        out.append(ch)
    return out


def calm_reference(daily_stress: np.ndarray) -> tuple[float, float]:
    """(centre, scale) of the calmer half of the training days' stress index: the median and
    the scaled median absolute deviation of the days at or below the overall median. Distances
    from calm in these units do not depend on how many stressed days the history holds."""
    v = daily_stress[np.isfinite(daily_stress)]
    lower = v[v <= np.median(v)]
    centre = float(np.median(lower))
    scale = float(1.4826 * np.median(np.abs(lower - centre)))
    return centre, scale if scale > 1e-9 else 1.0


def label_clusters(chars: list[dict[str, float]], config: RegimeConfig | dict) -> list[str]:
    """Each cluster's (or day's) label from its characteristics: how far its stress sits above
    the calm half of the training history (in that half's dispersion), then its trend and
    drawdown. ``config`` may be the labelling settings as stored in a model."""
    r = config.model.labelling if isinstance(config, RegimeConfig) else Labelling(**config)
    out = []
    for ch in chars:
        level = _finite(ch.get("stress_vs_calm"))
        trend = _finite(ch.get("trend_short"))
        deep = _finite(ch.get("drawdown"))
        excess = ch.get("excess")
        if excess is not None and np.isfinite(excess):
            # the relative level names clusters only when the excess is material
            if excess <= r.calm_excess:
                level = min(level, r.calm_level)
            elif excess < r.risk_off_excess:
                level = min(level, np.nextafter(r.risk_off_level, -np.inf))
        if in_correction(ch.get("drawdown_level"), ch.get("drawdown_low_level"),
                         ch.get("ret_short_level"), r):
            level = max(level, r.risk_off_level)
        if level >= r.risk_off_level:
            panic = level >= r.panic_level or trend <= r.crash_trend
            out.append("RISK_OFF_PANIC" if panic else "RISK_OFF_GRINDING")
        elif level <= r.calm_level:
            out.append("RISK_ON_LOW_VOL")
        elif trend >= r.rising_trend and deep >= r.deep_drawdown:
            out.append("RECOVERY")
        elif trend <= r.falling_trend:
            out.append("TRANSITION")
        else:
            out.append("RISK_ON_HIGH_VOL")
    return out


def in_correction(drawdown: float | None, low: float | None, trend: float | None,
                  rules: Labelling) -> bool:
    """Whether a day (drawdown from the peak, lowest drawdown of its window, both <= 0, and
    short-window return) is in a correction: at or below ``correction_drawdown``, or still at
    or below ``correction_release`` after reaching it within the window; with a
    ``correction_trend``, only while the short-window return is at or below it."""
    limit = rules.correction_drawdown
    if limit is None or drawdown is None or not np.isfinite(drawdown):
        return False
    if rules.correction_trend is not None and not (
            trend is not None and np.isfinite(trend) and trend <= rules.correction_trend):
        return False
    reached = low is not None and bool(np.isfinite(low)) and low <= limit
    return bool(drawdown <= limit or (reached and drawdown <= rules.correction_release))


def _finite(v: float | None) -> float:
    return float(v) if v is not None and np.isfinite(v) else 0.0


def _full_precision_cholesky(gmm, d: int) -> np.ndarray:
    k = gmm.n_components
    pc = np.asarray(gmm.precisions_cholesky_)
    if gmm.covariance_type == "full":
        return pc
    if gmm.covariance_type == "tied":
        return np.repeat(pc[None, :, :], k, axis=0)
    if gmm.covariance_type == "diag":
        return np.stack([np.diag(pc[i]) for i in range(k)])
    return np.stack([np.eye(d) * pc[i] for i in range(k)])


def fit_regime_model(features: pd.DataFrame, trained_through: pd.Timestamp,
                     config: RegimeConfig) -> RegimeModel:
    """Fit prototypes on the feature rows dated on or before ``trained_through``."""
    from scipy.stats import chi2
    from sklearn.mixture import GaussianMixture

    from prometheus_dagster.engines.regime.smoothing import smooth_labels, transition_matrix

    hist = features[features.index <= pd.Timestamp(trained_through)]
    cols = select_features(hist, config.model.features, config.model.min_feature_coverage)
    if len(cols) < 2:
        cols += [f for f in select_features(hist, config.model.fallback_features,
                                            config.model.min_feature_coverage)
                 if f not in cols]
    if len(cols) < 2:
        raise RegimeTrainingError(
            f"regime model through {pd.Timestamp(trained_through).date()}: fewer than two "
            f"features have data on {config.model.min_feature_coverage:.0%} of the sessions "
            f"(present: {', '.join(c for c in hist.columns if hist[c].notna().any()) or 'none'})")
    rows_all = hist
    rows = hist[cols].dropna()
    need = config.refit.min_training_sessions
    if len(rows) < need:
        raise RegimeTrainingError(
            f"regime model through {pd.Timestamp(trained_through).date()}: {len(rows)} "
            f"session(s) with complete features ({', '.join(cols)}), {need} needed "
            "(refit.min_training_sessions); ingest more history or lower the setting")
    logs = [f for f in cols if f in LOG_FEATURES]
    x = transform(rows, cols, logs)
    keep = np.isfinite(x).all(axis=1)
    x, rows = x[keep], rows[keep]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    weights = np.array([config.model.feature_weights.get(f, 1.0) for f in cols])
    z = np.clip((x - mean) / scale, -Z_CLIP, Z_CLIP) * weights
    k = min(config.model.num_clusters, max(2, len(rows) // 20))
    gmm = GaussianMixture(n_components=k, covariance_type=config.model.covariance_type,
                          reg_covar=config.model.regularisation, n_init=config.model.n_init,
                          random_state=config.model.seed, max_iter=500)
    gmm.fit(z)
    resp = gmm.predict_proba(z)
    reference = characteristic_reference(rows_all.loc[rows.index], cols,
                                         config.model.labelling.stress_weights)
    chars = characteristics(rows_all.loc[rows.index], resp, reference)
    # clusters in order of stress, so versions read alike
    order = np.argsort([c.get("stress", 0.0) for c in chars], kind="stable")
    centres = np.asarray(gmm.means_)[order]
    chars = [chars[i] for i in order]
    cl_labels = label_clusters(chars, config)
    labels = [lab for lab in REGIME_LABELS if lab in set(cl_labels)]
    model = RegimeModel(
        features=cols, log_features=logs, mean=mean.tolist(), scale=scale.tolist(),
        weights=np.asarray(gmm.weights_)[order].tolist(), means=centres.tolist(),
        precision_chol=_full_precision_cholesky(gmm, len(cols))[order].tolist(),
        cluster_labels=cl_labels, cluster_characteristics=chars, labels=labels,
        transition=np.eye(len(labels)).tolist(), temperature=config.model.posterior_temperature,
        trained_through=str(pd.Timestamp(trained_through).date()), training_rows=len(rows),
        first_training_date=str(rows.index[0].date()), embedding_dim=config.embedding_dim,
        embedding_seed=config.model.seed, window=config.window, reference=reference,
        labelling=config.model.labelling.model_dump(),
        outlier_distance=float(np.sqrt(chi2.ppf(config.model.outlier_probability, len(cols)))),
        feature_weights=weights.tolist())
    zz, _ = model.standardise(rows)
    post, _ = model.cluster_posterior(zz)
    raw = np.asarray(labels)[np.argmax(model.label_posterior(post), axis=1)]
    smoothed = smooth_labels(list(raw), config.min_regime_duration_days,
                             config.confirmation_days, same_side=RISK_ON_LABELS,
                             same_side_confirmation=config.risk_on_confirmation)
    model.transition = transition_matrix(smoothed, labels, config.model.transition_prior).tolist()
    return model
