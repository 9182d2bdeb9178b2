"""The egress proxy: the only way out of a sandbox whose profile filters the network.

Owns: deciding each connection (``rules``: domain allow/deny, ports, methods), resolving
names itself and refusing local addresses (``addresses``, ``resolver``), speaking HTTP
proxy, CONNECT and SOCKS5 (``http``, ``server``; a request without a body by callbacks,
``connection``), connecting only to checked addresses (``dial``), per-connection
deadlines on shared timers (``deadlines``), terminating TLS with a per-session CA when
asked (``tls``), and running in a thread beside the runner on uvloop when installed
(``session``). Every refusal is audited through the callback the runner hands in.
Does not own: putting the proxy in the sandbox's path — each backend does that, so no
route but this one exists.
"""
