// The daemon's configuration: one immutable value built from YAML by one validation pass.
// Every error names file:line:column. Reload builds a new Config and swaps it in; nothing
// else keeps raw YAML.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "net/copy_classes.h"
#include "net/endpoint.h"

namespace mpudp {

enum class ProxyRole : std::uint8_t { Cpe, Concentrator };
enum class SessionModeConfig : std::uint8_t { Multiplexed, PerBinding };
enum class LogLevel : std::uint8_t { Error, Warn, Info, Debug };
// stderr: the service manager's log (journald reads the priority from each line);
// syslog: syslog(3), facility daemon (OpenWrt's logd, a syslog daemon without systemd).
enum class LogTarget : std::uint8_t { Stderr, Syslog };
enum class InterceptMode : std::uint8_t { Tproxy, Nfqueue };
// Which remotes may reach a binding's external port (RFC 4787 section 5): any
// (endpoint-independent), or only addresses the binding has sent to (address-dependent).
enum class FilteringConfig : std::uint8_t { EndpointIndependent, AddressDependent };
// tunnel.path_recovery: leave the kernel's MPTCP and TCP retransmission settings alone, or
// set the ones that make a dark path's data move to the other paths sooner (pm/recovery.h).
enum class PathRecovery : std::uint8_t { Kernel, Fast };

struct Config {
  ProxyRole role = ProxyRole::Cpe;
  LogLevel log_level = LogLevel::Info;
  LogTarget log_target = LogTarget::Stderr;
  // mpudpctl talks to the daemon here; empty turns the control socket off. The default
  // is a build setting (MPUDP_CONTROL_SOCKET); ctl/control.h moves it under /var/run
  // where /run does not exist.
  std::string control_socket = MPUDP_CONTROL_SOCKET;
  // Prometheus text exposition over HTTP; off (family None) unless set. A bare port
  // means 127.0.0.1:port.
  Endpoint metrics_listen;
  SessionModeConfig session_mode = SessionModeConfig::Multiplexed;

  struct Cpe {
    std::uint16_t tproxy_port = 5555;
    Endpoint concentrator;  // required when role is cpe
    // Bindings one LAN host (client address) may hold: a host cycling source ports then
    // evicts its own oldest bindings, not other hosts'. 0: no cap below bindings.max.
    std::size_t max_bindings_per_host = 0;
    // With tunnel.copies: flows copied on every uplink whatever their rate (still within
    // each carrier's tunnel.copy_rate), and their replies too (net/copy_classes.h).
    // Classes set by the flow's ends apply to flows that begin after a reload.
    CopyClasses copy_classes;
  } cpe;

  struct Concentrator {
    std::vector<Endpoint> listen;  // required (non-empty) when role is concentrator
    // SO_REUSEPORT on the listeners: several daemons on one host share the listen
    // addresses, one per core (docs/SCALE.md). Off by default, so that a second daemon
    // started by mistake fails with EADDRINUSE instead of taking half the sessions.
    bool reuse_port = false;
    // With reuse_port: this daemon's own port on the listen addresses (0: none). What
    // must reach this daemon and not any of the host's, a multiplexed session's express
    // connection, comes here: the HELLO names it (docs/SCALE.md, "All cores").
    std::uint16_t instance_port = 0;
    // This concentrator's own address when several share one behind a load balancer
    // (docs/SCALE.md): named to CPEs in the HELLO (their express connections come here),
    // announced with ADD_ADDR (their joins come here) and listened on, at the port of
    // the first `listen` entry. Port 0 here; family None: unset.
    Endpoint direct_address;
    // Destination policy (see relay/policy.h): private ranges the concentrator may relay
    // to, and ranges it must not. Text form ("10.0.0.0/8"), validated by the loader.
    std::vector<std::string> allow_destinations;
    std::vector<std::string> deny_destinations;
    // Bounds against floods: tunnel connections at once, and bindings one CPE (its
    // tenant key: its TLS identity, or a cleartext CPE's peer address) may hold, so one CPE cannot take the whole
    // table; a CPE at its quota evicts its own oldest bindings (binding/binding_table.h).
    std::size_t max_sessions = 65536;  // per-binding mode: one session per binding
    static constexpr std::size_t kDefaultMaxBindingsPerCpe = 8192;
    std::size_t max_bindings_per_cpe = kDefaultMaxBindingsPerCpe;
    // Connections that have not authenticated yet (tunnel/admission.h): at most this
    // many at once, in all and from one source prefix (IPv4 /24, IPv6 /56); at a cap the
    // oldest of the prefix, or of the busiest prefix, is closed to make room. Each must
    // complete its handshake within handshake_timeout.
    std::size_t max_handshaking = 1024;
    std::size_t max_handshaking_per_prefix = 256;
    std::chrono::milliseconds handshake_timeout = std::chrono::seconds(3);
    // The operator's binding log (binding/binding_log.h): a line per binding made and
    // ended, to a file (appended, reopened on reload for logrotate) or to syslog with its
    // own facility. Off while both are unset; the loader allows one of them at most.
    struct BindingLog {
      std::string path;                        // absolute
      bool syslog = false;
      std::string syslog_facility = "daemon";  // daemon, user, local0..local7
      bool enabled() const { return syslog || !path.empty(); }
      friend bool operator==(const BindingLog&, const BindingLog&) = default;
    } binding_log;
    // NAT behaviour (docs/NAT.md): inbound filtering, and whether a remote's datagram to
    // a binding re-arms its lifetime (outbound traffic always does, RFC 4787 REQ-6).
    FilteringConfig filtering = FilteringConfig::EndpointIndependent;
    bool refresh_on_inbound = true;
  } concentrator;

  // How LAN datagrams reach the CPE: TPROXY rules (default) or NFQUEUE, for kernels
  // without TPROXY. `nfqueue.fail`: open lets traffic pass natively when mpudpd is not
  // reading (queue bypass), closed drops it.
  InterceptMode intercept = InterceptMode::Tproxy;
  struct Nfqueue {
    std::uint16_t queue = 0;
    bool fail_open = true;
  } nfqueue;

  // Read by iptables/mpudp-rules (through `mpudpd --print-rules`, print_rules below), not
  // by the daemon: the bounds live here only, so the daemon and the rules never disagree.
  struct Rules {
    std::vector<std::string> lan;
    // The mark is matched and set under the mask only, so other users of the mark
    // (mwan3, SQM, fw4) keep their bits. The mark must lie inside the mask.
    std::uint32_t mark = 1;
    std::uint32_t mask = 0xffffffff;
    std::uint32_t table = 100;  // not 253..255 (default, main, local)
    std::uint32_t pref = 100;   // 1..32765: before the main table's rule
    std::vector<std::string> exclude;
    bool ipv6 = true;
    std::string backend = "auto";
    // LAN UDP while mpudpd does not take it (stopped, crashed, restarting): open lets it
    // take the normal route, closed drops it. Same meaning in both modes and backends
    // (nfqueue.fail is the older spelling for NFQUEUE; it agrees with this one).
    bool fail_open = true;
  } rules;

  struct Bindings {
    std::chrono::milliseconds idle_timeout = std::chrono::seconds(300);
    std::size_t max = 65536;
    std::size_t max_remotes = 64;  // remote endpoints per binding
  } bindings;

  // MPTCP endpoints the daemon adds, one per uplink and address family, and moves as
  // the uplinks' addresses change (pm/). Empty: the kernel's endpoints are left alone.
  // Flags carry the kernel's names; on the CPE `subflow` is on unless set otherwise.
  struct Path {
    std::string interface;  // checked to exist when the daemon starts, not here
    bool subflow = false;
    bool signal = false;
    bool backup = false;
    bool fullmesh = false;
    bool laminar = false;  // Linux 6.18: one subflow per announced address, from here
    // With tunnel.copies, whether this uplink gets a copy carrier: unset, every path but
    // a backup one (a metered LTE uplink carries copies only when asked).
    std::optional<bool> copies;
    bool carries_copies() const { return copies.value_or(!backup); }
    friend bool operator==(const Path&, const Path&) = default;
  };
  std::vector<Path> paths;

  // The kernel's per-connection limits; unset ones are derived from the paths.
  struct MptcpLimits {
    std::optional<std::uint32_t> subflows;
    std::optional<std::uint32_t> add_addr_accepted;
    friend bool operator==(const MptcpLimits&, const MptcpLimits&) = default;
  } limits;

  // Mutual authentication of CPE and concentrator, and the identity of each CPE
  // (docs/CONFIG.md, "auth"; docs/PROTOCOL.md, "TLS layer"). Required on both roles,
  // written out, so that a forgotten key never silently means an open concentrator:
  //   None         auth: none (no key; implies encryption: none)
  //   SharedKey    auth: {psk_file} alone: one key for every CPE, no identity (the
  //                migration path from protocol v1; docs/CONFIG.md says what it becomes)
  //   Psk          CPE auth: {identity, psk_file}; concentrator auth: {peers_file}
  //   Certificate  auth: {cert_file, key_file, ca_file, crl_file?} on both roles
  enum class AuthMode : std::uint8_t { None, SharedKey, Psk, Certificate };
  struct Auth {
    AuthMode mode = AuthMode::None;
    bool none = false;  // mode == None, kept for the v1 handshake's callers
    std::string psk_file;  // absolute path; mode 0600 or stricter
    // The key itself: filled by load_config_file (load_config_string never reads files).
    std::string psk;
    std::string identity;    // CPE, Psk mode: the name the concentrator knows it by
    std::string peers_file;  // concentrator, Psk mode: "IDENTITY HEXKEY" lines, 0600
    std::map<std::string, std::string> peers;  // filled by load_config_file
    // Certificate mode: PEM files; key_file 0600 or stricter. The CPE's identity is its
    // certificate's first DNS subjectAltName, else its commonName.
    std::string cert_file;
    std::string key_file;
    std::string ca_file;
    std::string crl_file;     // optional
    std::string server_name;  // CPE, optional: the name the concentrator's cert must carry
  } auth;

  // TLS 1.3 around the whole tunnel (issue 18), or cleartext written out on both sides.
  enum class Encryption : std::uint8_t { Tls, None };
  enum class Cipher : std::uint8_t { Auto, AesGcm, ChaCha20 };
  Encryption encryption = Encryption::Tls;
  struct Tls {
    Cipher cipher = Cipher::Auto;
    std::uint64_t key_update_bytes = std::uint64_t{1} << 30;  // 0: never
    std::chrono::milliseconds key_update_interval = std::chrono::hours(1);  // 0: never
    // Concentrator: also serve CPEs that run encryption: none (an operator-owned access
    // network); they have no identity and no key check beyond v1's.
    bool accept_cleartext = false;
  } tls;

  struct Tunnel {
    // What the kernel holds unsent only: 20 ms of it keeps the subflows fed between two
    // top-ups (5 ms left the uplinks ~12 % idle in bench aggregation), and light flows
    // skip it on the express connection.
    static constexpr std::chrono::milliseconds kDefaultTargetDelay{20};
    // Unsent plus what waits in the paths' queues, which every flow on the path shares.
    static constexpr std::chrono::milliseconds kPathQueueTargetDelay{5};
    // Spares per uplink: with two uplinks, four carriers on each fill the 8 slots.
    static constexpr unsigned kMaxCopySpares = 3;
    // Multiplexed sessions send a keepalive after this much silence and give the
    // connection up after three keepalives go unanswered.
    std::chrono::milliseconds keepalive = std::chrono::seconds(15);
    // Bytes a connection may hold in user space waiting for the socket; past it,
    // datagrams are dropped (counted), never queued without bound. A memory bound sized
    // for bursts (a page load's 300 KB of replies fits several times); how long datagrams
    // wait is bounded by queue_target and queue_interval.
    std::size_t queue_bytes = 2 * 1024 * 1024;
    // CoDel on the user-space queues (tunnel/sojourn.h): once the shortest wait has stayed
    // above queue_target for a queue_interval, datagrams are dropped at the head, more
    // often until it is below again; 4 × queue_interval is the longest any may wait.
    // 5 ms: a call's datagrams should not wait longer than a few of its packet
    // intervals; 100 ms: about the RTT of the flows inside the tunnel, RFC 8289's
    // default, and long enough for a page load's burst to drain on a few Mbit/s.
    std::chrono::milliseconds queue_target{5};
    std::chrono::milliseconds queue_interval{100};
    // Unsent data a connection may keep in the kernel, as time at the rate its subflows
    // send (the send limit, tunnel/send_limit.h); 0 turns the limit off. Unset, it is
    // kDefaultTargetDelay, or kPathQueueTargetDelay with limit_path_queue: the two
    // settings bound different things (docs/CONFIG.md).
    std::chrono::milliseconds target_delay = kDefaultTargetDelay;
    // The send limit also counts data in flight that waits in the paths' queues (from
    // each subflow's RTT above its minimum), so that the tunnel's own bulk keeps a FIFO
    // bottleneck's queue near target_delay. For paths whose RTT is steady when idle
    // (DSL, fibre, cable); on LTE or satellite it reads jitter as queue and slows the
    // tunnel down. Off by default.
    bool limit_path_queue = false;
    // Each tunnel socket's receive buffer (SO_RCVBUF, forced past net.core.rmem_max when
    // the daemon may), which bounds the window the peer may send into; 0 leaves it to
    // the kernel's autotuning. Why fixed: autotuning starts a connection at
    // net.ipv4.tcp_rmem's default (a 64 KiB window) and MPTCP grows it late; a bulk
    // flow into 2 x 50 Mbit/s then sent into a closed window and, when the window
    // update did not come, both paths stood idle for 0.4-0.7 s at a time during the
    // first seconds (bench aggregation; docs/CONFIG.md). Set once the peer has
    // authenticated; read at connection time.
    static constexpr std::size_t kDefaultReceiveBuffer = 4 * 1024 * 1024;
    static constexpr std::size_t kMinReceiveBuffer = 64 * 1024;
    static constexpr std::size_t kMaxReceiveBuffer = 64 * 1024 * 1024;
    std::size_t receive_buffer = kDefaultReceiveBuffer;
    // Multiplexed sessions: a second connection for light flows, so that a call's
    // datagrams never wait behind (or for the retransmissions of) bulk data in the main
    // connection's byte stream. Both sides must allow it; read at connection time.
    bool express = true;
    // A flow within this rate (bytes/s; bursts of a quarter second of it) is light and
    // rides the express connection: calls, games, DNS at the default of 512 kbit/s; raise
    // it for video calls (1-3 Mbit/s) to take them off the bulk flows' queue too.
    std::uint32_t express_rate = 64000;
    // Marks on the express connection's packets, so that a queue that tells packets
    // apart sends the light flows ahead of bulk data: the local queueing priority
    // (SO_PRIORITY: 6 is TC_PRIO_INTERACTIVE, pfifo_fast's first band) and the DSCP
    // (0: unmarked; IPv4 tunnels only, the kernel's MPTCP has no IPV6_TCLASS).
    int express_priority = 6;
    int express_dscp = 0;
    // Redundant delivery (multiplexed sessions, with express): the CPE opens one plain TCP
    // carrier per uplink (paths[], bound to its interface) and sends each datagram of a
    // light flow on every one, numbered; the receiver delivers the first copy. The
    // concentrator copies the replies the same way. Both sides must enable it; read at
    // connection time. Off by default: it multiplies the light flows' uplink bytes.
    bool copies = false;
    // Each carrier's budget for copies (bytes/s; bursts of a quarter second of it): past
    // it, a datagram skips that carrier (it still goes on the others, or on the express
    // connection when none has room).
    std::uint32_t copy_rate = 125000;
    // With copies, spare carriers per uplink (the CPE's; the concentrator follows the
    // CPE's HELLOs) that take copies only while another carrier is stalled: during an
    // outage the surviving uplink then sends each datagram on 1 + copy_spares
    // connections, and a loss on one of them no longer waits for TCP's retransmission.
    // Idle otherwise. true in the file is 1, false 0.
    unsigned copy_spares = 1;
    // The subflows' TCP congestion control (TCP_CONGESTION on the MPTCP socket, which the
    // kernel passes to every subflow, joins included); empty: the system's default
    // (net.ipv4.tcp_congestion_control). With limit_path_queue, which keeps the paths'
    // queues short itself, cubic kept the bench's uplinks busier than bbr did (86-91 %
    // against 82-86 %, docs/CONFIG.md).
    std::string congestion_control;
    // With copies, the copy carriers' own TCP congestion control (unset: bbr). A carrier
    // sends a call's few small segments a round trip; on an uplink that loses packets
    // cubic or reno halve a window that is only a few segments, and the call waits
    // behind it (bench realtime under cubic: 0.9-7.4 % late instead of 0-0.4 %); bbr
    // keeps the window the rate needs. An empty string: the tunnel's
    // (congestion_control above, else the system's). Set in the file: the daemon refuses
    // a name the kernel lacks; the default falls back to the tunnel's, with a warning.
    std::optional<std::string> copy_congestion_control;
    static constexpr const char* kDefaultCopyCongestionControl = "bbr";
    const std::string& copy_congestion_control_name() const {
      static const std::string dflt = kDefaultCopyCongestionControl;
      return copy_congestion_control ? *copy_congestion_control : dflt;
    }
    // How soon MPTCP gives up waiting on a path that stopped delivering: `kernel` keeps
    // the namespace's settings, `fast` sets three of them (pm/recovery.h) at start and
    // puts them back at exit. Namespace-wide, so not the default.
    PathRecovery path_recovery = PathRecovery::Kernel;
  } tunnel;
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error has no position (unreadable file)
  int column = 0;  // 1-based
  std::string message;
  std::string str() const;  // "FILE:LINE:COL: message" (or "FILE: message")
};

using ConfigResult = std::variant<Config, ConfigError>;

// `name` is what errors call the source (normally the path). load_config_string checks
// the auth files' names but does not read them; load_config_file also reads and checks
// them (permissions, format, key length), filling auth.psk and auth.peers.
ConfigResult load_config_string(std::string_view yaml, std::string_view name);
ConfigResult load_config_file(const std::string& path);

// What iptables/mpudp-rules needs, as validated KEY=value lines (one value per line;
// LAN and EXCLUDE repeat): MODE, PORT, MARK, MASK, TABLE, PREF, BACKEND, IPV6, QUEUE,
// FAIL, CONCENTRATOR (address only; absent when not set), LAN, EXCLUDE. Numbers in
// decimal. Documented in mpudp-rules(8).
std::string print_rules(const Config& cfg);

// Only the keys mpudp-rules reads (intercept, nfqueue, rules, cpe.tproxy_port,
// cpe.concentrator), validated by the same tables, with nothing required: how
// mpudp-rules checks values given on its command line.
ConfigResult load_rules_fragment(std::string_view yaml, std::string_view name);

// Every key the loader accepts, dotted ("rules.mark", "paths[].interface"), in table
// order: what docs/man/mpudp.yaml.5 is checked against.
std::vector<std::string> config_keys();

// concentrator.direct_address with the first listen entry's port (the port CPEs dial on
// the balanced address, which their joins keep: ADD_ADDR carries no port); family None
// when direct_address is unset.
Endpoint direct_endpoint(const Config& cfg);
// Whether a listen list already takes connections to `at` (the same endpoint, or the
// unspecified address of its family on its port: IPv6 listeners are v6-only).
bool listens_on(const std::vector<Endpoint>& listen, const Endpoint& at);
// Re-reads the key material a Config names (psk_file, peers_file; the certificate files
// are checked for access and left to the TLS layer to parse), for a reload that keeps
// everything else. `name` is what errors call the configuration; an error in the peers
// file names that file and line. On error `cfg` is unchanged.
std::optional<ConfigError> reload_auth_files(Config& cfg, std::string_view name);

const char* to_string(ProxyRole r);
const char* to_string(SessionModeConfig m);
const char* to_string(FilteringConfig f);
const char* to_string(PathRecovery r);
const char* to_string(LogLevel l);
const char* to_string(LogTarget t);
const char* to_string(Config::AuthMode m);

}  // namespace mpudp
