#include "io/loop.h"

namespace mpudp {

IoWatcher::IoWatcher(Loop* loop, Callback cb) : loop_(loop), cb_(std::move(cb)) {
  ev_init(&w_, &IoWatcher::trampoline);
  w_.data = this;
}

void IoWatcher::watch(int fd, int events) {
  if (ev_is_active(&w_) && w_.fd == fd && (w_.events & (EV_READ | EV_WRITE)) == events) return;
  ev_io_stop(loop_, &w_);
  if (events == 0) return;
  ev_io_set(&w_, fd, events);
  ev_io_start(loop_, &w_);
}

void IoWatcher::stop() { ev_io_stop(loop_, &w_); }

void IoWatcher::trampoline(Loop*, ev_io* w, int revents) {
  static_cast<IoWatcher*>(w->data)->cb_(revents);
}

Timer::Timer(Loop* loop, Callback cb) : loop_(loop), cb_(std::move(cb)) {
  ev_init(&w_, &Timer::trampoline);
  w_.data = this;
}

void Timer::start(double after_s) {
  ev_timer_stop(loop_, &w_);
  ev_timer_set(&w_, after_s < 0 ? 0 : after_s, 0.);
  ev_timer_start(loop_, &w_);
}

void Timer::stop() { ev_timer_stop(loop_, &w_); }

void Timer::trampoline(Loop*, ev_timer* w, int) { static_cast<Timer*>(w->data)->cb_(); }

SignalWatcher::SignalWatcher(Loop* loop, int signum, Callback cb)
    : loop_(loop), cb_(std::move(cb)) {
  ev_signal_init(&w_, &SignalWatcher::trampoline, signum);
  w_.data = this;
  ev_signal_start(loop_, &w_);
}

SignalWatcher::~SignalWatcher() { ev_signal_stop(loop_, &w_); }

void SignalWatcher::trampoline(Loop*, ev_signal* w, int) {
  static_cast<SignalWatcher*>(w->data)->cb_(w->signum);
}

Deferred::Deferred(Loop* loop) : loop_(loop) {
  ev_prepare_init(&w_, &Deferred::on_prepare);
  w_.data = this;
  ev_prepare_start(loop_, &w_);
  // The prepare watcher must not keep the loop alive by itself.
  ev_unref(loop_);
}

Deferred::~Deferred() {
  ev_ref(loop_);
  ev_prepare_stop(loop_, &w_);
}

void Deferred::add_task(std::function<void()> fn) { tasks_.push_back(std::move(fn)); }

void Deferred::on_prepare(Loop*, ev_prepare* w, int) {
  auto* self = static_cast<Deferred*>(w->data);
  for (auto& t : self->tasks_) t();
  self->graveyard_.clear();
}

}  // namespace mpudp
