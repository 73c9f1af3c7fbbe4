// RAII libev watchers. A watcher lives inside its owner and stops when the owner dies,
// so no callback can reach a destroyed object. The loop is always passed in, never global.
#pragma once

#include <ev.h>

#include <functional>
#include <memory>
#include <vector>

namespace mpudp {

using Loop = struct ev_loop;

class IoWatcher {
 public:
  using Callback = std::function<void(int revents)>;
  IoWatcher(Loop* loop, Callback cb);
  ~IoWatcher() { stop(); }
  IoWatcher(const IoWatcher&) = delete;
  IoWatcher& operator=(const IoWatcher&) = delete;

  // (Re)starts watching `fd` for `events` (EV_READ | EV_WRITE); no-op when unchanged.
  void watch(int fd, int events);
  void stop();
  int events() const { return ev_is_active(&w_) ? w_.events & (EV_READ | EV_WRITE) : 0; }

 private:
  static void trampoline(Loop*, ev_io* w, int revents);
  Loop* loop_;
  Callback cb_;
  ev_io w_{};
};

class Timer {
 public:
  using Callback = std::function<void()>;
  Timer(Loop* loop, Callback cb);
  ~Timer() { stop(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(double after_s);  // one shot, replacing any pending shot
  void stop();
  bool active() const { return ev_is_active(&w_); }

 private:
  static void trampoline(Loop*, ev_timer* w, int revents);
  Loop* loop_;
  Callback cb_;
  ev_timer w_{};
};

class SignalWatcher {
 public:
  using Callback = std::function<void(int signum)>;
  SignalWatcher(Loop* loop, int signum, Callback cb);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  static void trampoline(Loop*, ev_signal* w, int revents);
  Loop* loop_;
  Callback cb_;
  ev_signal w_{};
};

// Work that must run after the current batch of callbacks, before the loop blocks:
// flushing coalesced writes, and destroying objects whose own callback asked for it.
class Deferred {
 public:
  explicit Deferred(Loop* loop);
  ~Deferred();
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;

  void add_task(std::function<void()> fn);  // runs every iteration, before blocking
  // Frees what destroy_later holds now (owners call it before their members go).
  void collect_garbage() { graveyard_.clear(); }
  // Frees `obj` once the callback that owns it has returned.
  template <class T>
  void destroy_later(std::unique_ptr<T> obj) {
    if (obj) graveyard_.emplace_back(obj.release(), [](void* p) { delete static_cast<T*>(p); });
  }

 private:
  static void on_prepare(Loop*, ev_prepare* w, int revents);
  Loop* loop_;
  ev_prepare w_{};
  std::vector<std::function<void()>> tasks_;
  std::vector<std::unique_ptr<void, void (*)(void*)>> graveyard_;
};

}  // namespace mpudp
