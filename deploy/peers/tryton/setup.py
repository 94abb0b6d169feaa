#!/usr/bin/env python3
"""Idempotent fixture setup for the synchub-tryton tests (stdlib only):
TWD currency, one company with admin as its user, and admin's company set,
so parties' sales and invoices can be created. usage: setup.py URL DB USER PASSWORD"""
import base64, json, sys, urllib.request

url, db, user, pw = sys.argv[1:5]
n = 0


def call(method, *params, auth=None):
    global n
    n += 1
    req = urllib.request.Request(f"{url}/{db}/rpc/", data=json.dumps(
        {"id": n, "method": method, "params": list(params)}).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": auth} if auth else {})})
    body = json.load(urllib.request.urlopen(req, timeout=60))
    if body.get("error"):
        raise SystemExit(f"{method}: {body['error']}")
    return body["result"]


uid, token, _ = call("common.db.login", user, {"password": pw}, "en")
auth = "Session " + base64.b64encode(f"{user}:{uid}:{token}".encode()).decode()
m = lambda model, meth, *a: call(f"model.{model}.{meth}", *a, {}, auth=auth)
cur = m("currency.currency", "search", [["code", "=", "TWD"]], 0, 1, None)
if not cur:
    cur = m("currency.currency", "create", [{"name": "New Taiwan Dollar", "code": "TWD", "symbol": "NT$",
                                              "digits": 0, "rounding": {"__class__": "Decimal", "decimal": "1"}}])
comp = m("company.company", "search", [], 0, 1, None)
if not comp:
    party = m("party.party", "create", [{"name": "SyncHub Demo Co."}])
    comp = m("company.company", "create", [{"party": party[0], "currency": cur[0], "timezone": "Asia/Taipei"}])
    m("res.user", "write", [uid], {"companies": [["add", comp]], "company": comp[0]})
print(f"tryton fixtures: currency TWD {cur[0]}, company {comp[0]}")
