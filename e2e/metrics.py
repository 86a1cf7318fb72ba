"""Reads capstan's /metrics with prometheus_client's OpenMetrics parser (strict: a malformed
exposition is an error, not a string that happens to match) and checks what a dashboard needs.

  metrics.py URL [family=type ...] [--min family{label=value,...}=N ...]

Each `family=type` must be present with that type; each `--min` names a sample (the family's
sample name with its labels, e.g. karpenter_nodeclaims_created_total{reason=provisioning}) whose
value summed over matching label sets must be at least N. Prints one line per check.
"""

import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def parse_selector(s):
    name, _, labels = s.partition("{")
    wanted = {}
    for pair in filter(None, labels.rstrip("}").split(",")):
        k, _, v = pair.partition("=")
        wanted[k] = v.strip('"')
    return name, wanted


def main(argv):
    url, args = argv[1], argv[2:]
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    failures = 0
    i = 0
    while i < len(args):
        if args[i] == "--min":
            selector, _, n = args[i + 1].rpartition("=")
            name, wanted = parse_selector(selector)
            total = sum(
                s.value
                for f in families.values()
                for s in f.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in wanted.items())
            )
            ok = total >= float(n)
            print(f"{'ok  ' if ok else 'FAIL'} {selector} = {total:g} (at least {n})")
            failures += not ok
            i += 2
            continue
        name, _, kind = args[i].partition("=")
        f = families.get(name)
        ok = f is not None and f.type == kind
        got = f.type if f is not None else "absent"
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {got} (want {kind})")
        failures += not ok
        i += 1
    print(f"{len(families)} families parsed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
