"""python manage.py cls WORKSPACE [--patchset P] [--patch NAME ...] [--upper-limit] [--format ..]"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from hepstore.errors import HepstoreError
from hepstore.jsonio import load_path
from reinterpret import services
from reinterpret.fitter import FitterError, InterpolationCodes


class Command(BaseCommand):
    help = "Asymptotic CLs (q~mu) and optional 95% CL upper limits for a workspace or patchset."

    def add_arguments(self, parser):
        parser.add_argument("workspace", help="background-only or full workspace (JSON)")
        parser.add_argument("--patchset", help="patchset JSON with the signal patches")
        parser.add_argument(
            "--patch",
            action="append",
            default=[],
            metavar="NAME",
            help="evaluate only this patch (repeatable)",
        )
        parser.add_argument(
            "--upper-limit",
            action="store_true",
            help="also compute observed and expected upper limits on mu",
        )
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument("--measurement", help="measurement name (default: the first)")
        parser.add_argument("--mu", type=float, default=1.0, help="tested POI value")
        parser.add_argument("--test-stat", choices=["qtilde", "q", "q0"], default="qtilde")
        parser.add_argument("--normsys-code", default="code4", choices=["code0", "code1", "code4"])
        parser.add_argument("--histosys-code", default="code4p", choices=["code0", "code4p"])

    def handle(self, *args, **opts):
        try:
            settings = services.Settings(
                measurement=opts["measurement"],
                test_stat=opts["test_stat"],
                mu_test=opts["mu"],
                upper_limit=opts["upper_limit"],
                codes=InterpolationCodes(opts["normsys_code"], opts["histosys_code"]),
            )
            workspace = load_path(opts["workspace"])
            if opts["patchset"]:
                patchset = load_path(opts["patchset"])
                points = services.patch_points(workspace, patchset, opts["patch"] or None)
            elif opts["patch"]:
                raise CommandError("--patch needs --patchset")
            else:
                points = [services.Point(None, None, workspace)]
            results = services.evaluate(points, settings, self._progress(opts, len(points)))
        except (HepstoreError, FitterError) as exc:
            raise CommandError(str(exc)) from exc
        except (KeyError, TypeError) as exc:
            raise CommandError(
                f"the input is not a valid workspace/patchset ({exc!r}); "
                "run `manage.py validate` on it for details"
            ) from exc
        failed = [r for r in results if r["error"] is not None]
        if failed and len(failed) == len(results):
            reasons = sorted({r["error"] for r in failed})
            label = (
                "the point could not be evaluated"
                if len(results) == 1
                else f"none of the {len(results)} points could be evaluated"
            )
            raise CommandError(f"{label}: " + "; ".join(reasons[:3]))
        if failed:
            self.stderr.write(
                f"{len(failed)} of {len(results)} points could not be evaluated "
                f"(their 'error' says why): {', '.join(str(r['patch']) for r in failed[:5])}"
            )
        if opts["format"] == "json":
            # allow_nan=False: a bare NaN/Infinity token is not JSON; the results carry null
            # with a reason instead, and this refuses rather than print anything else.
            body = {"results": results, "settings": settings.as_dict()}
            self.stdout.write(json.dumps(body, allow_nan=False))
            return
        self._table(results, opts["upper_limit"])

    def _progress(self, opts, total):
        # A progress bar only where a person watches: several points and a terminal.
        if total < 2 or not sys.stderr.isatty():
            return None

        def show(done, n):
            width = 30
            filled = int(width * done / n)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{n} points")
            if done == n:
                sys.stderr.write("\n")
            sys.stderr.flush()

        return show

    def _table(self, results, upper_limit):
        header = f"{'patch':<28} {'CLs obs':>10} {'CLs exp (-2..+2 sigma)':>52} {'mu_hat':>8}"
        if upper_limit:
            header += f" {'mu_up obs':>10} {'mu_up exp':>10}"
        self.stdout.write(header)
        for r in results:
            name = f"{str(r['patch'] or '-'):<28}"
            if r["error"] is not None:
                self.stdout.write(f"{name} ERROR: {r['error']}")
                continue
            exp = " ".join(f"{_fmt(x):>10}" for x in r["cls_exp"])
            line = f"{name} {_fmt(r['cls_obs']):>10} {exp:>52} {_fmt(r['mu_hat']):>8}"
            if upper_limit:
                bound = r["poi_upper_bound"]
                obs = _limit(r["mu_up_obs"], r["limit_above_poi_bound"], bound)
                med = _limit(r["mu_up_exp"][2], r["limit_above_poi_bound_exp"][2], bound)
                line += f" {obs:>10} {med:>10}"
            if r["warnings"]:
                flag = "" if r["converged"] else "NOT CONVERGED: "
                line += f"  {flag}" + "; ".join(r["warnings"])
            self.stdout.write(line)


def _fmt(x):
    return "-" if x is None else f"{x:.4g}"


def _limit(x, above: bool, bound) -> str:
    return f"> {bound:g}" if above else _fmt(x)
