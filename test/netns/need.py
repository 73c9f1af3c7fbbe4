# Prelude for the python assertions of the namespace tests (see check() in
# test_express.sh): the JSON files named on the command line, by base name without
# ".json", in d; need() prints each check and remembers a failure in `ok`.
import json, sys
d = {f.rsplit("/", 1)[1][:-5]: json.load(open(f)) for f in sys.argv[1:]}
ok = True
def need(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok = ok and cond
def conns(name, express):
    return [c for c in d[name]["connections"] if c["express_connection"] == express]
def counter(name, key):
    return d[name]["stats"]["counters"][key]
