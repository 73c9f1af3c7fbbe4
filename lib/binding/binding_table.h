// The binding table: one entry per UDP client endpoint (RFC 4787 REQ-1,
// endpoint-independent mapping) and the remote endpoints it talks to ("flows", each with
// a flow id shared with the peer proxy). No IO: the owner passes in a Clock and hears
// about removals through BindingObserver.
//
// All entries share one idle timeout, so least-recently-used order *is* expiry order:
// the LRU tail is always the next binding to expire. One timer at next_expiry() serves
// the whole table, and touching a binding is an O(1) list splice, never a timer re-arm.
//
// Tenants: each binding belongs to one, named by a key its creator supplies (on the
// concentrator the CPE's identity, on the CPE the LAN host when cpe.max_bindings_per_host
// is set; one unnamed tenant otherwise). A second LRU list per tenant lets a new binding
// push out its own tenant's least recently used one, never another tenant's: one tenant
// churning ports cannot empty the table of the others' bindings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "binding/clock.h"
#include "binding/dedup_window.h"
#include "net/endpoint.h"
#include "net/express_meter.h"
#include "net/queue_mark.h"

namespace mpudp {

struct Flow {
  Endpoint remote;
  std::uint32_t id = 0;
  // The peer knows this flow id on the current connection. Cleared when the connection
  // is replaced, so the next datagram re-announces the pair with OPEN.
  bool announced = false;
  // This side has put frames of the flow on the main / the express connection: its CLOSE
  // must follow them there (ProxyBase::send_close). Two bools in what was padding.
  bool sent_main = false;
  bool sent_express = false;
  // The concentrator: the remote is the public mapping of one of its own bindings, so
  // the flow's datagrams are handed to that binding, never sent (relay/nat.h).
  bool hairpin : 1 = false;
  // The concentrator: the client has sent to this remote (an OPEN or DATA from the CPE),
  // as address-dependent filtering asks; a flow a remote began need not have.
  // Both in the last byte of padding before express_conn.
  bool client_sent : 1 = false;
  // The same for the session's express connection: the id of the one this side announced
  // the flow on, kKnownEverywhere for a flow the peer announced (it knows its own ids).
  std::uint32_t express_conn = 0;
  static constexpr std::uint32_t kKnownEverywhere = 0xffffffffu;
  QueueMark mark;       // the main connection's business (fair queueing)
  ExpressMeter meter;   // light enough for the express connection?
  // Redundant delivery (tunnel.copies): the sequence number of the last datagram this
  // side sent in copies, the copies the peer sent that were delivered, and the copy
  // carriers (bit = slot) this side announced the flow on.
  std::uint32_t copy_seq = 0;
  std::uint8_t copy_known = 0;
  // Copied whatever its rate: at the CPE, a flow in one of cpe.copy_classes; at the
  // concentrator, one whose last copy from the CPE asked for it (wire::kDataCopyBack).
  bool copy_class = false;
  DedupWindow copies_seen;
};

enum class RemoveReason : std::uint8_t {
  Expired,      // idle timeout
  Evicted,      // table full, the tenant's least recently used went first
  QuotaEvicted, // its tenant at max_per_tenant, the tenant's least recently used went first
  PeerClosed,   // the peer sent CLOSE
  PeerReset,    // the peer sent RESET (it did not know the binding)
  SessionLost,  // the tunnel connection carrying it went away
  Refused,      // policy refused it
  Shutdown,     // daemon exit
};
const char* to_string(RemoveReason r);

// Edge-specific state hung on a binding (the concentrator's UDP socket, the CPE's
// per-binding connection). Destroyed with the binding, after the observer ran.
class BindingEdge {
 public:
  virtual ~BindingEdge() = default;
};

struct TenantBindings;

struct DirectionStats {
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
};

struct Binding {
  std::uint32_t scope = 0;  // which session the client endpoint belongs to (0 on the CPE)
  Endpoint client;
  std::vector<Flow> flows;
  TimePoint created{};
  TimePoint last_active{};
  DirectionStats upstream;    // client -> remote
  DirectionStats downstream;  // remote -> client
  // Copies beyond the first this side sent of the binding's datagrams (tunnel.copies):
  // the CPE's upstream, the concentrator's downstream. What redundancy costs per client.
  std::uint64_t duplicates_tx = 0;
  std::unique_ptr<BindingEdge> edge;

  Flow* find_flow(const Endpoint& remote);
  Flow* find_flow_id(std::uint32_t id);
  // The key of the tenant it belongs to ("" for the unnamed one).
  const std::string& tenant() const;

 private:
  friend class BindingTable;
  TenantBindings* tenant_ = nullptr;
  Binding* lru_prev_ = nullptr;  // towards most recently used
  Binding* lru_next_ = nullptr;  // towards least recently used
  Binding* tenant_prev_ = nullptr;  // the same, within its tenant
  Binding* tenant_next_ = nullptr;
  Binding* scope_prev_ = nullptr;  // the bindings of its scope (any order)
  Binding* scope_next_ = nullptr;
};

// The bindings of one tenant, most recently used first.
struct TenantBindings {
  std::string key;
  Binding* head = nullptr;
  Binding* tail = nullptr;
  std::size_t count = 0;
};

class BindingObserver {
 public:
  virtual ~BindingObserver() = default;
  // Called before the binding is destroyed. Must not add or remove bindings.
  virtual void on_binding_removed(Binding& b, RemoveReason why) = 0;
};

struct BindingLimits {
  std::size_t max_bindings = 65536;
  std::size_t max_flows_per_binding = 64;
  Duration idle_timeout = std::chrono::seconds(300);
  // Bindings one tenant may hold; at it, a new binding of the tenant evicts the tenant's
  // least recently used one (QuotaEvicted). 0: no quota below max_bindings.
  std::size_t max_per_tenant = 0;
};

class BindingTable {
 public:
  BindingTable(BindingLimits limits, const Clock& clock, BindingObserver* observer);
  ~BindingTable();  // removes what is left, reason Shutdown
  BindingTable(const BindingTable&) = delete;
  BindingTable& operator=(const BindingTable&) = delete;

  // Reload: a lower max evicts least recently used entries until it holds; a lower
  // max_per_tenant, each tenant's own least recently used ones (QuotaEvicted).
  void set_limits(const BindingLimits& limits);
  const BindingLimits& limits() const { return limits_; }

  Binding* find(std::uint32_t scope, const Endpoint& client);
  Binding* find_by_flow(std::uint32_t scope, std::uint32_t flow_id);

  // New binding of `tenant`, most recently used. With the tenant at max_per_tenant, its
  // own least recently used binding is removed first (QuotaEvicted); with the table at
  // max_bindings, the same (Evicted). Another tenant's binding is never removed for it:
  // when the table is full and the tenant holds nothing, the binding is refused (nullptr;
  // full() tells that case apart). nullptr also when max_bindings is 0 or the binding
  // exists already.
  Binding* create(std::uint32_t scope, const Endpoint& client, std::string_view tenant = {});
  bool full() const { return size() >= limits_.max_bindings; }

  // Adds a flow to `b` with the given id; nullptr when the binding has
  // max_flows_per_binding flows or the id is in use in this scope.
  Flow* add_flow(Binding& b, const Endpoint& remote, std::uint32_t flow_id);

  // A flow id not in use in `scope`, with `tag_bits` or-ed in (see
  // wire::kConcentratorFlowBit). Never returns 0.
  std::uint32_t allocate_flow_id(std::uint32_t scope, std::uint32_t tag_bits);

  // Re-arms the lifetime: last_active = now, moved to most recently used.
  void touch(Binding& b);

  void remove(Binding& b, RemoveReason why);
  // Removes every binding of a scope (its session went away); returns how many.
  std::size_t remove_scope(std::uint32_t scope, RemoveReason why);
  // Removes every binding whose lifetime ran out by clock.now(); returns how many.
  std::size_t expire();
  // When the least recently used binding expires; nullopt when the table is empty.
  std::optional<TimePoint> next_expiry() const;

  std::size_t size() const { return by_client_.size(); }
  // Bindings `tenant` holds.
  std::size_t tenant_size(std::string_view tenant) const;
  std::size_t tenant_count() const { return tenants_.size(); }
  // Each tenant with bindings, and how many it holds (any order).
  void for_each_tenant(const std::function<void(const std::string&, std::size_t)>& fn) const;
  // Most recently used first. `fn` must not add or remove bindings.
  void for_each(const std::function<void(const Binding&)>& fn) const;
  // Clears `announced` on every flow of a scope (its connection was replaced).
  void forget_announcements(std::uint32_t scope);
  // A copy carrier (slot, a bit of Flow::copy_known) of the scope was replaced: its flows
  // are announced on the new one again.
  void forget_copy_slot(std::uint32_t scope, unsigned slot);

 private:
  struct Key {
    std::uint32_t scope;
    Endpoint client;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  static std::uint64_t flow_key(std::uint32_t scope, std::uint32_t id) {
    return (static_cast<std::uint64_t>(scope) << 32) | id;
  }

  void lru_unlink(Binding& b);
  void lru_push_front(Binding& b);
  void tenant_unlink(Binding& b);
  void tenant_push_front(Binding& b);
  void scope_unlink(Binding& b);
  TenantBindings* find_tenant(std::string_view key);

  BindingLimits limits_;
  const Clock& clock_;
  BindingObserver* observer_;
  std::unordered_map<Key, std::unique_ptr<Binding>, KeyHash> by_client_;
  std::unordered_map<std::uint64_t, Binding*> by_flow_;
  // Values stay put while the map grows, so bindings may point at their tenant.
  std::unordered_map<std::string, TenantBindings> tenants_;
  // The first binding of each scope with any: a session's end (remove_scope) visits its
  // own bindings, not the whole table. Per-binding sessions end one by one, each with
  // a single binding, among possibly 100 000 others.
  std::unordered_map<std::uint32_t, Binding*> scope_heads_;
  Binding* lru_head_ = nullptr;  // most recently used
  Binding* lru_tail_ = nullptr;  // least recently used: expires first
  std::uint32_t next_flow_id_ = 1;
};

}  // namespace mpudp
