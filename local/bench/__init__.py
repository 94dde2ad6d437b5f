"""`make bench`: what Signoff costs, measured here: cold imports, requests per approved action, and
the price of 1,000 approved actions beside the anchors a user compares with."""
