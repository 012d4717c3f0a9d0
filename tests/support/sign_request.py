"""Signs a request per RFC 9421 with the `http-message-signatures` package (an
implementation Usher did not write), for Usher to verify.

Reads JSON on stdin: {"method", "url", "headers": {name: value}, "body", "key_id",
"alg" ("hmac-sha256" or "ed25519"), "key" (the HMAC secret, or an Ed25519 private key
PEM file), "covered": [...], optional "created" and "expires" (unix seconds) and "nonce"}.
Prints the headers to send (the given ones, and the Content-Digest, Signature-Input and
Signature the package adds) as a JSON object.
"""

import datetime
import json
import sys

import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

spec = json.load(sys.stdin)
body = spec.get("body", "").encode()
request = requests.Request(spec["method"], spec["url"], headers=spec.get("headers", {}),
                           data=body or None).prepare()
if spec["alg"] == "hmac-sha256":
    algorithm, key = algorithms.HMAC_SHA256, spec["key"].encode()
else:
    algorithm = algorithms.ED25519
    key = load_pem_private_key(open(spec["key"], "rb").read(), password=None)
signer = HTTPMessageSigner(signature_algorithm=algorithm,
                           key_resolver=MappingKeyResolver(public_keys={}, private_keys={spec["key_id"]: key}))
at = lambda name: (datetime.datetime.fromtimestamp(spec[name], tz=datetime.timezone.utc)
                   if name in spec else None)
signer.sign(request, key_id=spec["key_id"], label="sig1", covered_component_ids=spec["covered"],
            created=at("created"), expires=at("expires"), nonce=spec.get("nonce"),
            body=body or None)
print(json.dumps(dict(request.headers)))
