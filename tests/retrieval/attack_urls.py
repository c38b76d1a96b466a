"""The attack URLs of issue 15, kind 3: plain data, imported by the tests and by count_attack_urls.py."""

# URLs that name a non-public address in a notation browsers accept: refused, never connected to
OBFUSCATED_LOOPBACK = ["http://0177.0.0.1/", "http://0x7f.1/", "http://2130706433/", "http://127.1/",
                       "http://017700000001/", "http://０ｘ７ｆ．１/", "http://[::ffff:127.0.0.1]/",
                       "http://[0:0:0:0:0:ffff:7f00:1]/", "http://0.0.0.0/", "http://[::]/", " http://127.0.0.1\t/"]
# URLs that no client can send: InvalidURLError
MALFORMED = ["http://☃.example/", "http://xn--/", "http://xn--a.example/", "http://exa mple.com/", "http://[::1",
             "http://example.com:99999/", "http://%zz/", "http://a.b/\ud800", "http://ex\x00ample.com/",
             "http://1.2.3.4.5/", "http://user@/", "http://[v1.x]/", "http://999.1.1.1/"]
NOT_HTTP = ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "file:///etc/passwd",
            "ftp://example.com/", "", "   ", "mailto:a@b.c"]

# Redirect Locations a hostile server sends, and the error each must give ("blocked" or "invalid")
REDIRECT_LOCATIONS = [
    ("javascript:alert(1)", "blocked"),
    ("data:text/html,<script>alert(1)</script>", "blocked"),
    ("data:text/html;base64,PGgxPmhpPC9oMT4=", "blocked"),
    ("http://[::1", "invalid"),
    ("http://☃.example/", "invalid"),
    ("http://0177.0.0.1/admin", "blocked"),
    ("http://169.254.169.254/latest/meta-data/", "blocked"),
    ("http://[fec0::1]/", "blocked"),
    ("http://exa mple.com/", "invalid"),
    ("file:///etc/passwd", "blocked"),
]
