#include "binding/binding_table.h"

#include <cassert>
#include <utility>

namespace mpudp {

namespace {

// Flow ids the counter hands out live in the low 31 bits; the top bit is left for tag
// bits (wire::kConcentratorFlowBit) so the two proxies never pick the same id.
constexpr std::uint32_t kFlowIdMask = 0x7fffffffu;

}  // namespace

const char* to_string(RemoveReason r) {
  switch (r) {
    case RemoveReason::Expired:
      return "expired";
    case RemoveReason::Evicted:
      return "evicted";
    case RemoveReason::QuotaEvicted:
      return "quota_evicted";
    case RemoveReason::PeerClosed:
      return "peer_closed";
    case RemoveReason::PeerReset:
      return "peer_reset";
    case RemoveReason::SessionLost:
      return "session_lost";
    case RemoveReason::Refused:
      return "refused";
    case RemoveReason::Shutdown:
      return "shutdown";
  }
  // A value cast from a corrupt byte must still print something.
  return "unknown";
}

Flow* Binding::find_flow(const Endpoint& remote) {
  for (Flow& f : flows) {
    if (f.remote == remote) return &f;
  }
  return nullptr;
}

Flow* Binding::find_flow_id(std::uint32_t id) {
  for (Flow& f : flows) {
    if (f.id == id) return &f;
  }
  return nullptr;
}

const std::string& Binding::tenant() const {
  static const std::string unnamed;
  return tenant_ != nullptr ? tenant_->key : unnamed;
}

std::size_t BindingTable::KeyHash::operator()(const Key& k) const noexcept {
  // Scope ids are small consecutive integers, so spread them with a golden-ratio multiply
  // before folding in; a plain xor would only perturb the low bits of the endpoint hash.
  std::size_t h = EndpointHash{}(k.client);
  h ^= static_cast<std::size_t>(k.scope) * static_cast<std::size_t>(0x9e3779b97f4a7c15ull) +
       (h << 6) + (h >> 2);
  return h;
}

BindingTable::BindingTable(BindingLimits limits, const Clock& clock, BindingObserver* observer)
    : limits_(limits), clock_(clock), observer_(observer) {}

BindingTable::~BindingTable() {
  while (lru_tail_ != nullptr) remove(*lru_tail_, RemoveReason::Shutdown);
}

void BindingTable::set_limits(const BindingLimits& limits) {
  limits_ = limits;
  // Existing bindings keep their flows if max_flows_per_binding drops: cutting a live flow
  // would silently break a conversation the client still believes is open.
  while (size() > limits_.max_bindings && lru_tail_ != nullptr) {
    remove(*lru_tail_, RemoveReason::Evicted);
  }
  if (limits_.max_per_tenant == 0) return;
  // Victims first: removing one may erase its tenant from the map being walked.
  std::vector<Binding*> victims;
  for (auto& [key, t] : tenants_) {
    Binding* b = t.tail;
    for (std::size_t n = t.count; n > limits_.max_per_tenant; --n, b = b->tenant_prev_)
      victims.push_back(b);
  }
  for (Binding* b : victims) remove(*b, RemoveReason::QuotaEvicted);
}

TenantBindings* BindingTable::find_tenant(std::string_view key) {
  // One string per new binding, not per datagram: bindings keep a pointer to their tenant.
  auto it = tenants_.find(std::string(key));
  return it == tenants_.end() ? nullptr : &it->second;
}

void BindingTable::for_each_tenant(
    const std::function<void(const std::string&, std::size_t)>& fn) const {
  for (const auto& [key, t] : tenants_)
    if (t.count > 0) fn(key, t.count);
}

std::size_t BindingTable::tenant_size(std::string_view tenant) const {
  auto it = tenants_.find(std::string(tenant));
  return it == tenants_.end() ? 0 : it->second.count;
}

Binding* BindingTable::find(std::uint32_t scope, const Endpoint& client) {
  auto it = by_client_.find(Key{scope, client});
  return it == by_client_.end() ? nullptr : it->second.get();
}

Binding* BindingTable::find_by_flow(std::uint32_t scope, std::uint32_t flow_id) {
  auto it = by_flow_.find(flow_key(scope, flow_id));
  return it == by_flow_.end() ? nullptr : it->second;
}

Binding* BindingTable::create(std::uint32_t scope, const Endpoint& client,
                              std::string_view tenant) {
  if (limits_.max_bindings == 0) return nullptr;
  const Key key{scope, client};
  // Checked before evicting so a duplicate create cannot cost an innocent binding.
  if (by_client_.find(key) != by_client_.end()) return nullptr;

  // Allocate before evicting: if memory runs out, the table is left as it was.
  auto owned = std::make_unique<Binding>();
  Binding* b = owned.get();
  b->scope = scope;
  b->client = client;
  b->created = b->last_active = clock_.now();

  // Room is made inside the tenant only (see create()'s comment). Looked up again after
  // each removal: the tenant's entry goes with its last binding.
  for (;;) {
    TenantBindings* t = find_tenant(tenant);
    const std::size_t own = t != nullptr ? t->count : 0;
    if (limits_.max_per_tenant != 0 && own >= limits_.max_per_tenant) {
      remove(*t->tail, RemoveReason::QuotaEvicted);
    } else if (full()) {
      if (own == 0) return nullptr;
      remove(*t->tail, RemoveReason::Evicted);
    } else {
      break;
    }
  }
  auto [tit, fresh] = tenants_.try_emplace(std::string(tenant));
  if (fresh) tit->second.key = tit->first;
  b->tenant_ = &tit->second;
  Binding*& scope_head = scope_heads_[scope];
  by_client_.emplace(key, std::move(owned));
  lru_push_front(*b);
  tenant_push_front(*b);
  b->scope_next_ = scope_head;
  if (scope_head != nullptr) scope_head->scope_prev_ = b;
  scope_head = b;
  return b;
}

Flow* BindingTable::add_flow(Binding& b, const Endpoint& remote, std::uint32_t flow_id) {
  // 0 is what an unset Flow::id holds, so it can never name a real flow.
  if (flow_id == 0) return nullptr;
  if (b.flows.size() >= limits_.max_flows_per_binding) return nullptr;
  auto [it, inserted] = by_flow_.try_emplace(flow_key(b.scope, flow_id), &b);
  if (!inserted) return nullptr;
  try {
    Flow f;
    f.remote = remote;
    f.id = flow_id;
    b.flows.push_back(f);
  } catch (...) {
    // Keep the index in step with the vector: a flow id without a flow would dangle.
    by_flow_.erase(it);
    throw;
  }
  return &b.flows.back();
}

std::uint32_t BindingTable::allocate_flow_id(std::uint32_t scope, std::uint32_t tag_bits) {
  // With tag bits outside the counter's 31 bits, successive probes name distinct ids, and
  // this scope holds at most by_flow_.size() of them, so size()+1 probes always find a
  // free one. Tag bits inside the 31 bits break that; the fallback below may then be in
  // use, which add_flow refuses, so misuse fails safe instead of spinning for seconds.
  std::uint32_t candidate = 0;
  for (std::size_t probes = by_flow_.size() + 1; probes > 0; --probes) {
    const std::uint32_t id = next_flow_id_;
    next_flow_id_ = next_flow_id_ >= kFlowIdMask ? 1 : next_flow_id_ + 1;
    candidate = id | tag_bits;
    if (by_flow_.find(flow_key(scope, candidate)) == by_flow_.end()) return candidate;
  }
  return candidate;
}

void BindingTable::touch(Binding& b) {
  b.last_active = clock_.now();
  if (lru_head_ == &b) return;
  lru_unlink(b);
  lru_push_front(b);
  tenant_unlink(b);
  tenant_push_front(b);
}

void BindingTable::remove(Binding& b, RemoveReason why) {
  if (observer_ != nullptr) observer_->on_binding_removed(b, why);
  for (const Flow& f : b.flows) by_flow_.erase(flow_key(b.scope, f.id));
  lru_unlink(b);
  scope_unlink(b);
  TenantBindings* t = b.tenant_;
  tenant_unlink(b);
  if (t != nullptr && t->count == 0) {
    b.tenant_ = nullptr;
    tenants_.erase(tenants_.find(t->key));
  }
  auto it = by_client_.find(Key{b.scope, b.client});
  assert(it != by_client_.end() && it->second.get() == &b);
  // Take ownership out of the map before destroying, so the edge's destructor sees a
  // table that no longer holds the binding (it may close sockets that call back).
  std::unique_ptr<Binding> owned = std::move(it->second);
  by_client_.erase(it);
  owned.reset();
}

std::size_t BindingTable::remove_scope(std::uint32_t scope, RemoveReason why) {
  auto it = scope_heads_.find(scope);
  if (it == scope_heads_.end()) return 0;
  // Collected first: the observer may not add or remove bindings, but removal rewrites
  // the list being walked.
  std::vector<Binding*> victims;
  for (Binding* b = it->second; b != nullptr; b = b->scope_next_) victims.push_back(b);
  for (Binding* b : victims) remove(*b, why);
  return victims.size();
}

std::size_t BindingTable::expire() {
  const TimePoint now = clock_.now();
  std::size_t n = 0;
  while (lru_tail_ != nullptr && lru_tail_->last_active + limits_.idle_timeout <= now) {
    remove(*lru_tail_, RemoveReason::Expired);
    ++n;
  }
  return n;
}

std::optional<TimePoint> BindingTable::next_expiry() const {
  if (lru_tail_ == nullptr) return std::nullopt;
  return lru_tail_->last_active + limits_.idle_timeout;
}

void BindingTable::for_each(const std::function<void(const Binding&)>& fn) const {
  for (const Binding* b = lru_head_; b != nullptr; b = b->lru_next_) fn(*b);
}

void BindingTable::forget_announcements(std::uint32_t scope) {
  auto it = scope_heads_.find(scope);
  if (it == scope_heads_.end()) return;
  for (Binding* b = it->second; b != nullptr; b = b->scope_next_) {
    for (Flow& f : b->flows) {
      f.announced = false;
      f.express_conn = 0;
      f.sent_main = false;
      f.sent_express = false;
      f.copy_known = 0;
      // The peer's side of the session is new: its copies count from the start again.
      f.copy_seq = 0;
      f.copies_seen = DedupWindow{};
    }
  }
}

void BindingTable::forget_copy_slot(std::uint32_t scope, unsigned slot) {
  auto it = scope_heads_.find(scope);
  if (it == scope_heads_.end()) return;
  const auto keep = static_cast<std::uint8_t>(~(1u << slot));
  for (Binding* b = it->second; b != nullptr; b = b->scope_next_)
    for (Flow& f : b->flows) f.copy_known &= keep;
}

void BindingTable::scope_unlink(Binding& b) {
  if (b.scope_prev_ != nullptr) {
    b.scope_prev_->scope_next_ = b.scope_next_;
  } else if (b.scope_next_ != nullptr) {
    scope_heads_.find(b.scope)->second = b.scope_next_;
  } else {
    scope_heads_.erase(b.scope);
  }
  if (b.scope_next_ != nullptr) b.scope_next_->scope_prev_ = b.scope_prev_;
  b.scope_prev_ = b.scope_next_ = nullptr;
}

void BindingTable::lru_unlink(Binding& b) {
  if (b.lru_prev_ != nullptr) {
    b.lru_prev_->lru_next_ = b.lru_next_;
  } else {
    lru_head_ = b.lru_next_;
  }
  if (b.lru_next_ != nullptr) {
    b.lru_next_->lru_prev_ = b.lru_prev_;
  } else {
    lru_tail_ = b.lru_prev_;
  }
  b.lru_prev_ = b.lru_next_ = nullptr;
}

void BindingTable::tenant_unlink(Binding& b) {
  TenantBindings* t = b.tenant_;
  if (t == nullptr) return;
  if (b.tenant_prev_ != nullptr) {
    b.tenant_prev_->tenant_next_ = b.tenant_next_;
  } else {
    t->head = b.tenant_next_;
  }
  if (b.tenant_next_ != nullptr) {
    b.tenant_next_->tenant_prev_ = b.tenant_prev_;
  } else {
    t->tail = b.tenant_prev_;
  }
  b.tenant_prev_ = b.tenant_next_ = nullptr;
  --t->count;
}

void BindingTable::tenant_push_front(Binding& b) {
  TenantBindings* t = b.tenant_;
  b.tenant_prev_ = nullptr;
  b.tenant_next_ = t->head;
  if (t->head != nullptr) t->head->tenant_prev_ = &b;
  t->head = &b;
  if (t->tail == nullptr) t->tail = &b;
  ++t->count;
}

void BindingTable::lru_push_front(Binding& b) {
  b.lru_prev_ = nullptr;
  b.lru_next_ = lru_head_;
  if (lru_head_ != nullptr) lru_head_->lru_prev_ = &b;
  lru_head_ = &b;
  if (lru_tail_ == nullptr) lru_tail_ = &b;
}

}  // namespace mpudp
