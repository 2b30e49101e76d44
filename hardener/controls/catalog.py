"""The control catalog (DESIGN.md, "Control catalog").

Every finding hardener reports names a control from this table; no check carries its own title,
rationale or fix text. Ids and slugs are stable once released: add rows, never renumber.
"""

from __future__ import annotations

from hardener.controls.model import BlindSpot, Control, Reference, Severity, Vantage

__all__ = ["CATALOG", "BlindSpot", "Control", "Reference", "Severity", "Vantage", "by_id", "by_slug", "get"]


_C, _N, _H = Vantage.CONFIG, Vantage.NETWORK, Vantage.HOST

_ACCESS_README = Reference("Postfix", "SMTPD_ACCESS_README", "https://www.postfix.org/SMTPD_ACCESS_README.html")
_STIG_CLIENT = Reference("DISA STIG", "smtpd_client_restrictions (RHEL-07-040680 / RHEL-08-040290)")
_CAC_RELAY = Reference("ComplianceAsCode", "postfix_prevent_unrestricted_relay")
_CAC_BANNER = Reference("ComplianceAsCode", "postfix_server_banner")
_CIS_LOCAL = Reference("CIS", "Ensure mail transfer agent is configured for local-only mode")
_LYNIS_BANNER = Reference("Lynis", "MAIL-8818")
_LYNIS_VRFY = Reference("Lynis", "MAIL-8820")
_SMUGGLING = Reference("CVE", "CVE-2023-51764", "https://www.postfix.org/smtp-smuggling.html")
_BASIC = Reference("Postfix", "BASIC_CONFIGURATION_README", "https://www.postfix.org/BASIC_CONFIGURATION_README.html")
_TLS_README = Reference("Postfix", "TLS_README", "https://www.postfix.org/TLS_README.html")
_RFC8314 = Reference("RFC", "8314 (cleartext considered obsolete)")
_RFC8996 = Reference("RFC", "8996 (deprecating TLS 1.0 and 1.1)")
_RFC5321 = Reference("RFC", "5321")

# Limits shared by several controls.
_PER_CLIENT_EHLO = BlindSpot(
    "per-client-ehlo", _N,
    "smtpd_discard_ehlo_keyword_address_maps and smtpd_sasl_exceptions_networks change the EHLO reply "
    "for some clients only: the network judges what its own vantage is shown, lint what main.cf "
    "sets for everyone.")
_TLS_FIRST = ("A server that answers the commands with 530 'Must issue a STARTTLS command first' "
              "(smtpd_tls_security_level = encrypt) is asked again behind STARTTLS.")

CATALOG: tuple[Control, ...] = (
    Control(
        "HRD-RELAY-001", "open-relay", "Server relays mail for foreign domains from untrusted clients",
        Severity.CRITICAL, (_N, _C),
        "An open relay accepts mail from anyone to anyone. Spammers find one within hours; the host is "
        "blocklisted and its legitimate mail stops being delivered.",
        "Put reject_unauth_destination in smtpd_relay_restrictions after permit_mynetworks and "
        "permit_sasl_authenticated, keep mynetworks to the hosts that really submit mail, and list only "
        "the domains you accept in relay_domains.",
        (_CAC_RELAY, _ACCESS_README, Reference("Postfix", "postconf(5) smtpd_relay_restrictions")),
        rules={
            _C: "The decision smtpd makes at RCPT for a client outside mynetworks, without AUTH, "
                "sending to a foreign domain: client, HELO, sender, relay and recipient restrictions "
                "in Postfix's order, per smtpd service with its -o overrides, relay_domains as it "
                "really matches. A permit (or no reject) is a finding.",
            _N: "The relay battery (16 address forms, each MAIL FROM, RCPT TO, RSET; never DATA) from "
                "every vantage point: a 2xx to RCPT for a foreign domain from every vantage, at least "
                "one outside --trusted, is a finding. A 4xx is never a relay.",
        },
        blind_spots=(
            BlindSpot("unreadable-policy", _C,
                      "Policy services, milters and tables lint cannot read (SQL, LDAP, a missing "
                      "file) are taken as not matching; the network sees their real answer."),
            BlindSpot("vantage-trusted", _N,
                      "The network speaks only from its own vantage points: a relay open to clients "
                      "it cannot speak from is not seen."),
        )),
    Control(
        "HRD-NET-001", "mynetworks-too-broad", "Trusted networks (mynetworks) wider than needed",
        Severity.HIGH, (_C, _N),
        "Every client in mynetworks may relay anywhere. A range wider than the hosts that submit mail "
        "(0.0.0.0/0, a public range, mynetworks_style = subnet or class on a host with a public "
        "address) turns those clients into relay users.",
        "Set mynetworks explicitly to the loopback networks and the exact internal hosts or subnets "
        "that submit mail, e.g. mynetworks = 127.0.0.0/8 [::1]/128 10.1.2.0/28.",
        (_CAC_RELAY, _BASIC, _STIG_CLIENT), ("mynetworks", "mynetworks_style"),
        rules={
            _C: "mynetworks (or what mynetworks_style derives) holds a network matching every "
                "address, a public range wider than a /24 (IPv4) or /56 (IPv6), a network outside "
                "the --trusted declarations, or mynetworks_style = subnet or class on a host with a "
                "public address.",
            _N: "From two or more vantage points (--source-address, --xclient-addr): the relay "
                "battery is accepted from a vantage outside --trusted and refused from another.",
        },
        blind_spots=(
            BlindSpot("one-vantage", _N,
                      "With a single vantage point the network cannot tell trusted networks from an "
                      "open relay: the check is skipped."),
            BlindSpot("vantage-trusted", _N,
                      "A too-wide network that contains none of the audit's vantage points is not "
                      "seen from the network."),
        )),
    Control(
        "HRD-NET-002", "mynetworks-malformed", "mynetworks entry that Postfix rejects or reads differently",
        Severity.MEDIUM, (_C,),
        "An entry Postfix cannot parse stops smtpd from starting; one it reads differently than "
        "written (an IPv6 form such as [::ffff:]/104, a host part in a CIDR, a stray comma) trusts "
        "other clients than the admin intended.",
        "Write each network as ADDRESS/LENGTH with the host bits zero, IPv6 in brackets "
        "([2001:db8::]/64), separated by spaces or single commas.",
        (_BASIC, Reference("Postfix", "postconf(5) mynetworks")), ("mynetworks",),
        rules={
            _C: "An entry Postfix refuses, or reads as other addresses than written (host bits set, "
                "[::ffff:]/104, stray commas). An entry that can never match but does no harm, such "
                "as the [::ffff:127.0.0.0]/104 Postfix generates itself, is at most info.",
        }),
    Control(
        "HRD-NET-004", "mynetworks-redundant", "mynetworks entry that never matches but does no harm",
        Severity.INFO, (_C,),
        "Postfix turns IPv4-mapped IPv6 clients (::ffff:a.b.c.d) into IPv4 before it looks at "
        "mynetworks, so an entry such as [::ffff:127.0.0.0]/104 (Debian's default main.cf writes it) "
        "never matches; when another entry trusts the same IPv4 network it changes nothing.",
        "Nothing is required; the entry may be removed (mynetworks = 127.0.0.0/8 [::1]/128).",
        (_BASIC, Reference("Postfix", "postconf(5) mynetworks")), ("mynetworks",),
        rules={
            _C: "An IPv4-mapped IPv6 network in mynetworks whose IPv4 form another entry already "
                "trusts (without that entry it is mynetworks-malformed: its clients are not trusted).",
        }),
    Control(
        "HRD-RELAY-002", "relay-restrictions", "Relay restrictions lack reject_unauth_destination",
        Severity.CRITICAL, (_C,),
        "Postfix refuses relaying only through reject_unauth_destination (or defer_unauth_destination) "
        "in smtpd_relay_restrictions or smtpd_recipient_restrictions. A permit before it, or its "
        "absence in both lists, makes the server an open relay.",
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
        "reject_unauth_destination; set compatibility_level = 3.6 so the default applies.",
        (_CAC_RELAY, _ACCESS_README, _STIG_CLIENT),
        ("smtpd_relay_restrictions", "smtpd_recipient_restrictions", "compatibility_level"),
        rules={
            _C: "Neither smtpd_relay_restrictions nor smtpd_recipient_restrictions refuses a foreign "
                "domain for an untrusted client (reject_unauth_destination, defer_unauth_destination) "
                "before a permit lets that client through.",
        }),
    Control(
        "HRD-NET-003", "inet-interfaces-exposed", "Send-only host listens beyond loopback",
        Severity.HIGH, (_C, _H),
        "A null client only submits mail to a relay. Listening on external interfaces exposes an SMTP "
        "server nobody needs and every smtpd bug to the network.",
        "Set inet_interfaces = loopback-only (and mydestination empty, local_transport = error) on "
        "send-only hosts.",
        (_CIS_LOCAL, Reference("Postfix", "STANDARD_CONFIGURATION_README null client")),
        ("inet_interfaces",),
        rules={
            _C: "The host receives mail for no domain and trusts only loopback (a null client), and "
                "inet_interfaces or an inet service in master.cf listens beyond loopback.",
            _H: "A send-only host has a listening SMTP socket on an address other than loopback.",
        }),
    Control(
        "HRD-BANNER-001", "banner-leak", "Software name, version or OS disclosed to clients",
        Severity.MEDIUM, (_N, _C),
        "A greeting such as '220 mx ESMTP Postfix (Debian/GNU)' tells an attacker which exploits to "
        "try. RFC 5321 requires only the host name after 220.",
        "smtpd_banner = $myhostname ESMTP (no $mail_name, $mail_version or OS name), and no product "
        "or version in smtpd_reject_footer.",
        (_CAC_BANNER, _LYNIS_BANNER, Reference("DISA STIG", "RHEL-07-040600 (smtpd_banner)")),
        ("smtpd_banner", "smtpd_reject_footer"),
        rules={
            _C: "smtpd_banner as expanded ($mail_name is Postfix, $mail_version its version), and the "
                "text of smtpd_reject_footer (which Postfix appends to every 4xx and 5xx reply), "
                "name a product, an operating system or a version number. The first word of the "
                "greeting and myhostname are the host's name and not searched. Both vantages use "
                "one list of names (hardener.controls.disclosure).",
            _N: "The 220 greeting and the EHLO reply (after their first word, the host name), the "
                "HELP reply and the reply to an unknown command name a product, an operating system "
                "or a version number from the same list; names the audit sent itself are ignored.",
        },
        blind_spots=(
            BlindSpot("built-in-replies", _C,
                      "Replies whose text is compiled into the server (HELP, error texts; Postfix's "
                      "name nothing) are seen by the network only; lint reads the texts main.cf "
                      "sets."),
        )),
    Control(
        "HRD-ENUM-001", "vrfy-enabled", "VRFY command answered",
        Severity.MEDIUM, (_N, _C),
        "VRFY lets anyone ask about mailboxes. Postfix answers 252 for an address it would accept and "
        "550 for an unknown one, so an answered VRFY confirms addresses for spam and phishing; a "
        "server that answers 252 to everything today confirms them after the next change.",
        "disable_vrfy_command = yes (Postfix and hardener's MTA then answer 502).",
        (_LYNIS_VRFY, Reference("CIS", "Postfix VRFY disabled")), ("disable_vrfy_command",),
        rules={
            _C: "disable_vrfy_command is not yes (per smtpd service). The EHLO keyword does not "
                "matter: smtpd_discard_ehlo_keywords = vrfy hides the keyword, not the command.",
            _N: "VRFY for root, postmaster or a random name gets any reply other than 500 or 502 "
                "(not recognized, not implemented, disabled): 252 for every name counts. Whether the "
                "replies also tell users apart is user-enumeration. " + _TLS_FIRST,
        }),
    Control(
        "HRD-ENUM-002", "expn-enabled", "EXPN command answered",
        Severity.MEDIUM, (_N, _C),
        "EXPN reveals alias and list members. A server that answers EXPN discloses its users and "
        "its lists.",
        "Disable EXPN in the MTA. Postfix has no EXPN command and hardener's MTA always answers 502: "
        "with either, nothing to do.",
        (_LYNIS_VRFY, _RFC5321),
        rules={
            _C: "Never from a main.cf: Postfix has no EXPN command (500 whatever the configuration) "
                "and hardener's MTA always answers 502. The check passes and says why.",
            _N: "EXPN for root, postmaster or a random name gets any reply other than 500 or 502. "
                + _TLS_FIRST,
        }),
    Control(
        "HRD-ENUM-003", "user-enumeration", "Replies differ for existing and unknown users",
        Severity.LOW, (_N,),
        "When VRFY, EXPN or RCPT TO answers differently for an existing and an unknown local user, "
        "an untrusted client can enumerate mailboxes.",
        "disable_vrfy_command = yes; reject unknown recipients with the same code and text for every "
        "unknown address, or accept all and reject at a later stage; for a gateway, reject unknown "
        "relay recipients uniformly.",
        (_RFC5321,), ("disable_vrfy_command", "smtpd_reject_unlisted_recipient", "local_recipient_maps"),
        rules={
            _N: "VRFY, EXPN or RCPT TO (after MAIL FROM:<>) confirms root, an account on nearly every "
                "host (250, 251, or 252 for VRFY and EXPN), and refuses a random name with a 5xx. "
                + _TLS_FIRST,
        },
        blind_spots=(
            BlindSpot("mailbox-data", _C,
                      "Whether replies differ depends on the accounts, aliases and tables behind "
                      "local_recipient_maps, not on main.cf alone: lint does not judge it."),
        )),
    Control(
        "HRD-TLS-001", "starttls-missing", "STARTTLS not offered",
        Severity.MEDIUM, (_N, _C),
        "Without STARTTLS every message and any credentials cross the network in clear text.",
        "smtpd_tls_security_level = may with smtpd_tls_chain_files (or smtpd_tls_cert_file and "
        "smtpd_tls_key_file) pointing at a valid certificate.",
        (_TLS_README, _RFC8314), ("smtpd_tls_security_level", "smtpd_tls_cert_file", "smtpd_tls_chain_files"),
        rules={
            _C: "smtpd_tls_security_level (or the legacy smtpd_use_tls, smtpd_enforce_tls) is none, "
                "no certificate is configured, or smtpd_discard_ehlo_keywords hides STARTTLS.",
            _N: "The clear-text EHLO reply does not advertise STARTTLS, or STARTTLS is answered with "
                "something other than 220 (Postfix answers 454 when it cannot load its certificate).",
        },
        blind_spots=(
            BlindSpot("certificate-unloadable", _C,
                      "lint cannot know whether Postfix will load a certificate or key file it "
                      "cannot read itself (another machine, a root-only file, a missing path): "
                      "Postfix then advertises STARTTLS and answers 454, which only the network "
                      "sees."),
            _PER_CLIENT_EHLO,
        )),
    Control(
        "HRD-TLS-002", "tls-weak-protocol", "TLS 1.0, TLS 1.1 or SSL accepted",
        Severity.MEDIUM, (_N, _C),
        "SSLv3, TLS 1.0 and TLS 1.1 are deprecated (RFC 8996) and open to downgrade and padding "
        "attacks.",
        "smtpd_tls_protocols = >=TLSv1.2 and smtpd_tls_mandatory_protocols = >=TLSv1.2",
        (_TLS_README, _RFC8996), ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols"),
        rules={
            _C: "When STARTTLS is offered: the protocol list in force (smtpd_tls_mandatory_protocols "
                "at level encrypt, smtpd_tls_protocols otherwise), read in every form Postfix "
                "accepts (>=, <=, lists, ! exclusions, commas or spaces, any case), enables SSLv3, "
                "TLSv1 or TLSv1.1.",
            _N: "A STARTTLS handshake completes while the client offers only SSLv3, TLS 1.0 or "
                "TLS 1.1, one at a time.",
        },
        blind_spots=(
            BlindSpot("local-openssl", _N,
                      "The audit can offer only the protocols the local OpenSSL allows; one it "
                      "cannot offer is reported as not tested, never as refused."),
            BlindSpot("no-handshake", _N,
                      "When no TLS handshake succeeds (STARTTLS refused with 454 because Postfix "
                      "cannot load its certificate), the network tests no protocol and skips; lint "
                      "still judges the list that applies once the certificate loads."),
            BlindSpot("server-openssl", _C,
                      "The server's OpenSSL settings (openssl.cnf MinProtocol, security level) can "
                      "refuse a protocol main.cf enables; lint reads main.cf only."),
        )),
    Control(
        "HRD-TLS-003", "tls-cert-invalid", "TLS certificate expired, self-signed, untrusted or wrong name",
        Severity.MEDIUM, (_N, _C),
        "Peers that verify certificates (DANE, MTA-STS, relays at encrypt/verify level) refuse or "
        "downgrade a server whose certificate does not validate.",
        "Install a certificate from a trusted CA whose name matches myhostname, with its chain, and "
        "renew it before it expires; use an RSA key of at least 2048 bits or ECDSA P-256.",
        (_TLS_README, Reference("RFC", "7672 (DANE for SMTP)")), ("smtpd_tls_cert_file", "smtpd_tls_chain_files"),
        rules={
            _C: "Every certificate file the SMTP server loads (smtpd_tls_chain_files, else "
                "smtpd_tls_cert_file and the other key types), read at the time of the run: expired "
                "or not yet valid, self-signed, an issuer neither in the file nor in the system CA "
                "store, names that do not cover myhostname, or an RSA or DSA key under 2048 bits "
                "or an EC key under 256.",
            _N: "The certificate the server sends after STARTTLS, verified by OpenSSL against the "
                "system store and --ca-file and then read: expired or not yet valid, self-signed, "
                "untrusted, names that do not cover the target (or the EHLO name when the target "
                "is an address), a weak key as for lint.",
        },
        blind_spots=(
            BlindSpot("certificate-unreadable", _C,
                      "A certificate file lint cannot read (another machine, permissions) is not "
                      "judged: the check is skipped and names the file."),
            BlindSpot("trust-anchors", _C,
                      "lint follows a chain only to the system CA store; the network also trusts "
                      "--ca-file, and each peer has its own store."),
            BlindSpot("one-certificate", _N,
                      "The network sees only the certificate the server picks for its handshake "
                      "(RSA or ECDSA); another configured certificate is judged by lint alone."),
        )),
    Control(
        "HRD-AUTH-001", "auth-plaintext", "AUTH offered before STARTTLS",
        Severity.HIGH, (_N, _C),
        "AUTH over an unencrypted session sends passwords in clear text (PLAIN and LOGIN are only "
        "base64).",
        "smtpd_tls_auth_only = yes",
        (_TLS_README, _RFC8314), ("smtpd_tls_auth_only",),
        rules={
            _C: "smtpd_sasl_auth_enable = yes while smtpd_tls_auth_only is not yes and TLS is "
                "optional (level may or none): AUTH is offered on the clear-text session.",
            _N: "The clear-text EHLO reply advertises AUTH (or the old AUTH= form).",
        },
        blind_spots=(
            BlindSpot("sasl-backend", _C,
                      "lint cannot know whether the SASL backend (Cyrus, Dovecot) offers any "
                      "mechanism; without one Postfix advertises no AUTH."),
            BlindSpot("hidden-auth", _N,
                      "The audit sends no credentials: AUTH accepted without being advertised "
                      "(smtpd_discard_ehlo_keywords = auth) is not seen."),
            _PER_CLIENT_EHLO,
        )),
    Control(
        "HRD-SMUG-001", "smtp-smuggling", "Non-standard end-of-data accepted (SMTP smuggling)",
        Severity.HIGH, (_N, _C),
        "A server that ends DATA at <LF>.<LF> or similar lets an attacker smuggle a second, spoofed "
        "message through an outbound relay that does not (CVE-2023-51764).",
        "smtpd_forbid_bare_newline = yes (Postfix >= 3.5.23/3.6.13/3.7.9/3.8.4), or "
        "smtpd_data_restrictions = reject_unauth_pipelining on older versions.",
        (_SMUGGLING, Reference("SEC Consult", "SMTP Smuggling (2023)")),
        ("smtpd_forbid_bare_newline", "smtpd_data_restrictions"),
        rules={
            _C: "smtpd_forbid_bare_newline is not yes, normalize or reject; medium instead of high "
                "when reject_unauth_pipelining or smtpd_forbid_unauth_pipelining partly mitigates.",
            _N: "Only with --intrusive --rcpt ADDR: one message to ADDR per non-standard end-of-data "
                "sequence (ten of them); a sequence that ends DATA is a finding.",
        },
        blind_spots=(
            BlindSpot("not-intrusive", _N,
                      "Without --intrusive --rcpt the audit sends no message and skips the check."),
        )),
    Control(
        "HRD-PROTO-001", "helo-not-required", "Clients may skip HELO/EHLO",
        Severity.LOW, (_N, _C),
        "Requiring HELO stops a share of spam bots and makes HELO-based restrictions effective.",
        "smtpd_helo_required = yes",
        (Reference("Postfix", "postconf(5) smtpd_helo_required"), _RFC5321), ("smtpd_helo_required",),
        rules={
            _C: "smtpd_helo_required is not yes.",
            _N: "MAIL FROM straight after the greeting, without HELO or EHLO, gets 250 (a sender, "
                "then the null sender); 503 'send HELO/EHLO first' passes. " + _TLS_FIRST,
        },
        blind_spots=(
            BlindSpot("mail-refused", _N,
                      "When MAIL is refused for another reason (a restriction at MAIL time), the "
                      "network cannot tell and skips the check."),
        )),
    Control(
        "HRD-PROTO-002", "pipelining-unauth", "Unauthorized pipelining accepted",
        Severity.LOW, (_N, _C),
        "Clients that send commands ahead of replies without PIPELINING are mostly spamware; "
        "rejecting them also limits SMTP smuggling through pipelined DATA.",
        "smtpd_data_restrictions = reject_unauth_pipelining",
        (Reference("Postfix", "postconf(5) reject_unauth_pipelining"),),
        ("smtpd_data_restrictions", "smtpd_forbid_unauth_pipelining"),
        rules={
            _C: "Neither smtpd_forbid_unauth_pipelining = yes nor reject_unauth_pipelining reached "
                "in smtpd_data_restrictions for an untrusted client.",
            _N: "HELO (never EHLO, so PIPELINING is not negotiated), MAIL, RCPT and DATA in one "
                "write: 354 to DATA is a finding (the session is dropped at once, nothing is sent); "
                "a hang-up, or a 5xx to DATA after an accepted RCPT, passes. " + _TLS_FIRST,
        },
        blind_spots=(
            BlindSpot("no-recipient", _N,
                      "DATA needs an accepted recipient: postmaster at the server's name or address "
                      "literal, else --rcpt; without one the check is skipped."),
        )),
    Control(
        "HRD-PROTO-003", "size-unlimited", "No message size limit announced",
        Severity.LOW, (_N, _C),
        "Without a size limit one client can fill the queue file system and stop all mail; a limit "
        "clients are not told (no SIZE in EHLO) makes them send a whole message before it is refused.",
        "message_size_limit = 10240000 (or what your users need), never 0, and SIZE not in "
        "smtpd_discard_ehlo_keywords.",
        (Reference("Postfix", "postconf(5) message_size_limit"),),
        ("message_size_limit", "smtpd_discard_ehlo_keywords"),
        rules={
            _C: "message_size_limit = 0, or smtpd_discard_ehlo_keywords hides SIZE.",
            _N: "The EHLO reply does not advertise SIZE, or advertises it without a number or "
                "with 0.",
        },
        blind_spots=(_PER_CLIENT_EHLO,)),
    Control(
        "HRD-PRIV-001", "chroot-disabled", "Network-facing daemon not chrooted",
        Severity.MEDIUM, (_C, _H),
        "A chroot jail limits what a compromised smtpd can read or change to the queue directory.",
        "Set the chroot column (5th) of smtpd, smtp, cleanup, qmgr, bounce and the other network-facing "
        "services in master.cf to y.",
        (Reference("Postfix", "BASIC_CONFIGURATION_README chroot"),),
        rules={
            _C: "A network-facing service in master.cf (smtpd, postscreen, tlsproxy, dnsblog, smtp, "
                "lmtp, cleanup, hardener's listener) has a chroot column other than y ('-' is "
                "Postfix's default, n).",
            _H: "A running network-facing process has / as its root directory.",
        }),
    Control(
        "HRD-PRIV-002", "runs-as-root", "Network-facing process keeps uid 0",
        Severity.HIGH, (_H,),
        "A daemon that parses untrusted network input as root turns any bug into a root compromise.",
        "Run network-facing processes as the unprivileged mail_owner after binding (master.cf "
        "unprivileged column '-' or 'y').",
        (Reference("Postfix", "postconf(5) mail_owner"),), ("mail_owner",),
        rules={_H: "A process that holds an SMTP socket runs with uid 0 after start."}),
    Control(
        "HRD-PRIV-003", "queue-permissions", "Queue or config files writable by others",
        Severity.HIGH, (_H,),
        "Writable queue or configuration files let a local user inject, read or alter mail, or "
        "change the configuration the daemon runs.",
        "Queue directories owned by mail_owner, mode 0700 (maildrop 0730 group postdrop); "
        "configuration owned by root, not group- or world-writable.",
        (Reference("Postfix", "postfix-files"),), ("mail_owner", "queue_directory"),
        rules={_H: "A queue directory not owned by mail_owner or wider than postfix-files says, or a "
                   "configuration file not owned by root or writable by group or others."}),
    Control(
        "HRD-ALIAS-001", "root-alias-missing", "Mail to root not redirected to a person",
        Severity.LOW, (_C, _H),
        "Mail to root (cron, security tools, bounces) goes unread unless an alias sends it to a "
        "person who reads it.",
        "In the aliases file: root: admin@example.com and postmaster: root; run newaliases.",
        (_BASIC,), ("alias_maps", "alias_database"),
        rules={
            _C: "On a host that delivers locally (mydestination not empty, local_transport not error "
                "or discard), root's aliases, followed to the end, reach no person: none, a loop, "
                "root itself or /dev/null.",
            _H: "The same, read from the aliases file the running server uses.",
        }),
    Control(
        "HRD-NOTE-001", "surprising-setting", "Setting whose effect surprises admins",
        Severity.INFO, (_C,),
        "Some settings change what a host does in ways that are easy to miss; hardener explains them "
        "so the choice is deliberate.",
        "Keep the setting if it is intended; the evidence says what it does.",
        (_BASIC,),
        rules={_C: "A setting from hardener's list of easily missed effects is present; the finding "
                   "explains it (info, never a failure)."}),
)

_BY_ID = {c.id: c for c in CATALOG}
_BY_SLUG = {c.slug: c for c in CATALOG}


def by_id(control_id: str) -> Control:
    """The control with this id (KeyError if none)."""
    return _BY_ID[control_id]


def by_slug(slug: str) -> Control:
    """The control checked by this slug (KeyError if none)."""
    return _BY_SLUG[slug]


def get(key: str) -> Control:
    """A control by id or slug, case-insensitive for ids; KeyError naming the key if none."""
    if key.upper() in _BY_ID:
        return _BY_ID[key.upper()]
    if key in _BY_SLUG:
        return _BY_SLUG[key]
    raise KeyError(key)
