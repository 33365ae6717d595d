#!/usr/bin/python3
"""An independent reference for the judge's figures (steps/evaluate/judge.h):
the mean of a list of scores and its two-sided 95% confidence interval from
Student's t with n - 1 degrees of freedom, by SciPy:

    /usr/bin/python3 judge_ci_ref.py < input

Each line of stdin is a JSON object: {"scores": [...]} answers
{"mean", "sd", "low", "high"} (sd with n - 1 in the denominator; for fewer
than two scores low and high are the mean), and {"p": P, "df": DF} answers
{"t": the P-quantile of t with DF degrees of freedom}. One line out per line
in.

SciPy's t.ppf is off by up to 1e-8 in places (t(0.995, 3) = 5.8409092998 where
the quantile is 5.8409093097, tan(0.475 pi) = 12.706204736175 for t(0.975, 1)
where it says 12.706204736432), so each quantile is refined by Newton steps
on t.cdf, which is exact to double precision there."""
import json
import sys

import numpy as np
from scipy import stats


def t_quantile(p, df):
    t = stats.t.ppf(p, df)
    for _ in range(3):
        t -= (stats.t.cdf(t, df) - p) / stats.t.pdf(t, df)
    return float(t)


def main():
    for line in sys.stdin:
        q = json.loads(line)
        if "scores" in q:
            x = np.asarray(q["scores"], dtype=np.float64)
            mean = float(np.mean(x))
            if len(x) < 2 or np.all(x == x[0]):
                out = {"mean": mean, "sd": 0.0, "low": mean, "high": mean}
            else:
                sd = float(np.std(x, ddof=1))
                half = t_quantile(0.975, len(x) - 1) * sd / np.sqrt(len(x))
                out = {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half}
        else:
            out = {"t": t_quantile(q["p"], q["df"])}
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
