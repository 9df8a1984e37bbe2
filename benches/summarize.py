#!/usr/bin/env python3
"""Prints the criterion benches' medians (95% CI) and the ratios the targets
of issue 4 are stated in, from criterion's saved estimates.

    python3 benches/summarize.py [CRITERION_DIR]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion (or target/criterion).
"""

import json
import os
import statistics
import sys
from pathlib import Path


def load(root):
    results = {}
    for bench in root.rglob("new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        m = est["median"]
        results[meta["full_id"]] = (
            m["point_estimate"],
            m["confidence_interval"]["lower_bound"],
            m["confidence_interval"]["upper_bound"],
        )
    return results


def ns(v):
    return f"{v / 1000:.2f} µs" if v >= 1000 else f"{v:.0f} ns"


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(target) / "criterion")
    r = load(root)
    if not r:
        sys.exit(f"no criterion results under {root}")

    print("median [95% CI of the median]")
    for key in sorted(r):
        med, lo, hi = r[key]
        print(f"  {key:<48} {ns(med):>10}  [{ns(lo)} .. {ns(hi)}]")

    print("\nhot path (per request; added = variant - bare; floor = floor - harness;")
    print("  ratios per interleaved round, then the median over the rounds)")
    header = (f"  {'pattern/size':<20} {'layer added':>12} {'floor':>9} {'layer/floor':>11}"
              f" {'t-s added':>10} {'t-s/layer':>9}  rounds")
    print(header)
    for pattern in ("round_robin", "hot_key"):
        for size in ("1k", "100k", "1M"):
            rows = []
            for rnd in range(100):
                def get(v):
                    return r.get(f"hot_path/{pattern}/{v}/{size}-r{rnd}", (None,))[0]

                bare, layer, ts, floor, harness = (
                    get("bare"), get("layer"), get("tower_sessions"), get("floor"),
                    get("harness"))
                if None in (bare, layer, ts, floor, harness):
                    break
                added, ts_added, floor_net = layer - bare, ts - bare, floor - harness
                rows.append((added, floor_net, added / floor_net, ts_added,
                             ts_added / added))
            if not rows:
                continue
            added, floor_net, ratio, ts_added, ts_ratio = (
                statistics.median(col) for col in zip(*rows))
            ok1 = "met" if ratio <= 2 else "MISSED"
            ok2 = "met" if ts_ratio >= 5 else "MISSED"
            spread = " ".join(f"{row[2]:.2f}/{row[4]:.1f}" for row in rows)
            print(f"  {pattern + '/' + size:<20} {ns(added):>12} {ns(floor_net):>9} "
                  f"{ratio:>8.2f}x {ok1:<6} {ns(ts_added):>8} {ts_ratio:>7.1f}x {ok2:<6}"
                  f"  {spread}")

    print("\nrole cache on the hot path (layer_role_cache vs layer, whole request;"
          " median of the per-round ratios; target <= 1.10x)")
    for pattern in ("round_robin", "hot_key"):
        for size in ("1k", "100k", "1M"):
            ratios = []
            for rnd in range(100):
                layer = r.get(f"hot_path/{pattern}/layer/{size}-r{rnd}")
                cached = r.get(f"hot_path/{pattern}/layer_role_cache/{size}-r{rnd}")
                if not (layer and cached):
                    break
                ratios.append(cached[0] / layer[0])
            if ratios:
                ratio = statistics.median(ratios)
                print(f"  {pattern + '/' + size:<20} {ratio:.3f}x "
                      f"{'met' if ratio <= 1.10 else 'MISSED'}  "
                      + " ".join(f"{x:.3f}" for x in ratios))

    print("\nmetrics on the hot path (layer_metrics vs layer, whole request;"
          " median of the per-round ratios; target <= 1.10x)")
    for pattern in ("round_robin", "hot_key"):
        for size in ("1k", "100k", "1M"):
            ratios = []
            for rnd in range(100):
                layer = r.get(f"hot_path/{pattern}/layer/{size}-r{rnd}")
                metered = r.get(f"hot_path/{pattern}/layer_metrics/{size}-r{rnd}")
                if not (layer and metered):
                    break
                ratios.append(metered[0] / layer[0])
            if ratios:
                ratio = statistics.median(ratios)
                print(f"  {pattern + '/' + size:<20} {ratio:.3f}x "
                      f"{'met' if ratio <= 1.10 else 'MISSED'}  "
                      + " ".join(f"{x:.3f}" for x in ratios))

    create = r.get("creation/manager_create/fresh")
    if create:
        print(f"\ncreation: SessionManager::create {1e9 / create[0]:,.0f} sessions/s "
              f"({'met' if 1e9 / create[0] >= 300_000 else 'MISSED'} >= 300k/s)")
    cap = r.get("creation/manager_create/at_identity_cap")
    if cap:
        print(f"creation at the per-identity cap (evicting): {1e9 / cap[0]:,.0f} sessions/s")
    gen = r.get("creation/id_generate")
    if gen:
        print(f"id generation alone: {ns(gen[0])} ({1e9 / gen[0]:,.0f}/s)")

    ours = r.get("redis/round_robin/layer/10k")
    theirs = r.get("redis/round_robin/tower_sessions/10k")
    if ours and theirs:
        print(f"\nredis: layer {ns(ours[0])}, tower-sessions {ns(theirs[0])} per request "
              f"({theirs[0] / ours[0]:.2f}x)")
    inval = r.get("redis/invalidate_roles/two_replicas")
    if inval:
        print(f"redis: invalidate_roles, every replica acknowledged: {ns(inval[0])}")


if __name__ == "__main__":
    main()
