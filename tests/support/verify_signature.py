"""Verifies Usher's RFC 9421 signature on a request as an upstream received it, with the
`http-message-signatures` package (an implementation Usher did not write), against the
JWK set Usher publishes.

Reads JSON on stdin: {"method", "path" (with the query), "headers": {name: [values]},
"body", "jwks"}. Prints JSON: {"ok": true, "covered": [...]} or {"ok": false, "error"}.
"""

import base64
import json
import sys

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms

message = json.load(sys.stdin)
keys = {}
for jwk in message["jwks"]["keys"]:
    raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
headers = [(name, value) for name, values in message["headers"].items() for value in values]
body = message["body"].encode()
request = requests.Request(message["method"], "http://upstream" + message["path"],
                           headers=dict(headers), data=body or None).prepare()
verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                               key_resolver=MappingKeyResolver(public_keys=keys, private_keys={}))
try:
    required = ["@method", "@path", "@query", "x-tenant-id", "x-user-id"]
    if body:
        required.append("content-digest")
    results = verifier.verify(request, require_components=required,
                              body=body if body else None)
    result = results[0]
    print(json.dumps({"ok": True, "covered": list(result.covered_components),
                      "keyid": result.parameters.get("keyid"),
                      "body_checked": result.body is not None}))
except Exception as error:  # noqa: BLE001 - the verdict is the output
    print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
