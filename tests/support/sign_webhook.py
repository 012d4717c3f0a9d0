"""Signs a webhook the way its provider does, with implementations Usher did not write:
Standard Webhooks with the `standardwebhooks` package, Stripe by its documented scheme
(checked here with the `stripe` package's own verifier), GitHub by its documented HMAC.

Usage: sign_webhook.py SCHEME SECRET TIMESTAMP DELIVERY_ID < body
Prints the headers to send, as a JSON object.
"""

import datetime
import hashlib
import hmac
import json
import sys

scheme, secret, timestamp, delivery = sys.argv[1:5]
timestamp = int(timestamp)
body = sys.stdin.buffer.read()

if scheme == "standard":
    from standardwebhooks import Webhook

    at = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    signature = Webhook(secret).sign(delivery, at, body.decode())
    headers = {"webhook-id": delivery, "webhook-timestamp": str(timestamp),
               "webhook-signature": signature}
elif scheme == "stripe":
    import stripe

    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={timestamp},v1={mac}"
    # Stripe's own library accepts what this signer made (no time check here).
    stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance=None)
    headers = {"stripe-signature": header}
elif scheme == "github":
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": f"sha256={mac}", "x-github-delivery": delivery}
else:
    sys.exit(f"unknown scheme {scheme}")
print(json.dumps(headers))
