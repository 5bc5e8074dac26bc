// Happens-before edges for Abseil's synchronization under ThreadSanitizer.
//
// Debian's Abseil is not built with -fsanitize=thread, so TSan cannot see
// that absl::Mutex, absl::CondVar and absl::Notification order memory, and
// would report every access they guard as a data race. Linked only into
// TSan builds, this file interposes their entry points: each calls the
// library's own definition (found with dlsym(RTLD_NEXT)) and tells TSan what
// it did with __tsan_acquire / __tsan_release on the object's address, which
// is what Abseil's own TSan annotations do when it is built for TSan.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);

namespace {

#define NNLAB_STR2(x) #x
#define NNLAB_STR(x) NNLAB_STR2(x)

// The Itanium-mangled name of absl::<inline namespace>::`tail`, e.g.
// tail "5Mutex4LockEv". `konst` marks const member functions.
std::string Mangled(const char* tail, bool konst = false) {
  const std::string ns = NNLAB_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return std::string(konst ? "_ZNK4absl" : "_ZN4absl") +
         std::to_string(ns.size()) + ns + tail;
}

// The next definition of a mangled symbol after this executable's: the
// shared library's. Aborts if there is none, since a silently missing
// edge would turn into false race reports.
template <typename Fn>
Fn Real(const std::string& name) {
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_tsan: %s not found\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

void* Addr(const void* p) { return const_cast<void*>(p); }

// Calls the library's definition with reads ignored: inside it, Abseil
// evaluates waiters' Conditions (instrumented lambdas reading guarded
// state) while the lock is held, but before our acquire or after our
// release, where TSan would take them for races.
template <typename Fn, typename... Args>
auto Call(Fn fn, Args... args) {
  struct Ignore {
    Ignore() { AnnotateIgnoreReadsBegin(__FILE__, __LINE__); }
    ~Ignore() { AnnotateIgnoreReadsEnd(__FILE__, __LINE__); }
  } ignore;
  return fn(args...);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// Locks acquire, unlocks release. Readers are treated like writers, which
// can only hide races, never invent them.
void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>(Mangled("5Mutex4LockEv"));
  Call(real, this);
  __tsan_acquire(this);
}
void Mutex::ReaderLock() {
  static const auto real =
      Real<void (*)(Mutex*)>(Mangled("5Mutex10ReaderLockEv"));
  Call(real, this);
  __tsan_acquire(this);
}
bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>(Mangled("5Mutex7TryLockEv"));
  const bool locked = Call(real, this);
  if (locked) __tsan_acquire(this);
  return locked;
}
bool Mutex::ReaderTryLock() {
  static const auto real =
      Real<bool (*)(Mutex*)>(Mangled("5Mutex13ReaderTryLockEv"));
  const bool locked = Call(real, this);
  if (locked) __tsan_acquire(this);
  return locked;
}
void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>(Mangled("5Mutex6UnlockEv"));
  __tsan_release(this);
  Call(real, this);
}
void Mutex::ReaderUnlock() {
  static const auto real =
      Real<void (*)(Mutex*)>(Mangled("5Mutex12ReaderUnlockEv"));
  __tsan_release(this);
  Call(real, this);
}

// Lock-when: acquire once the lock is held (with or without the condition).
void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      Mangled("5Mutex8LockWhenERKNS0_9ConditionE"));
  Call(real, this, cond);
  __tsan_acquire(this);
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      Mangled("5Mutex14ReaderLockWhenERKNS0_9ConditionE"));
  Call(real, this, cond);
  __tsan_acquire(this);
}
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      Mangled("5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  const bool met = Call(real, this, cond, timeout);
  __tsan_acquire(this);
  return met;
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      Mangled("5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  const bool met = Call(real, this, cond, deadline);
  __tsan_acquire(this);
  return met;
}
bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      Mangled("5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_"
              "8DurationE"));
  const bool met = Call(real, this, cond, timeout);
  __tsan_acquire(this);
  return met;
}
bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      Mangled("5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_"
              "4TimeE"));
  const bool met = Call(real, this, cond, deadline);
  __tsan_acquire(this);
  return met;
}

// Await and CondVar waits release the lock while waiting and hold it again
// on return.
void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      Mangled("5Mutex5AwaitERKNS0_9ConditionE"));
  __tsan_release(this);
  Call(real, this, cond);
  __tsan_acquire(this);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      Mangled("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  __tsan_release(this);
  const bool met = Call(real, this, cond, timeout);
  __tsan_acquire(this);
  return met;
}
bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      Mangled("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  __tsan_release(this);
  const bool met = Call(real, this, cond, deadline);
  __tsan_acquire(this);
  return met;
}
void CondVar::Wait(Mutex* mu) {
  static const auto real =
      Real<void (*)(CondVar*, Mutex*)>(Mangled("7CondVar4WaitEPNS0_5MutexE"));
  __tsan_release(mu);
  Call(real, this, mu);
  __tsan_acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      Mangled("7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE"));
  __tsan_release(mu);
  const bool timed_out = Call(real, this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}
bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      Mangled("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE"));
  __tsan_release(mu);
  const bool timed_out = Call(real, this, mu, deadline);
  __tsan_acquire(mu);
  return timed_out;
}

// Notify releases; a wait that sees the notification acquires.
void Notification::Notify() {
  static const auto real =
      Real<void (*)(Notification*)>(Mangled("12Notification6NotifyEv"));
  __tsan_release(this);
  Call(real, this);
}
void Notification::WaitForNotification() const {
  static const auto real = Real<void (*)(const Notification*)>(
      Mangled("12Notification19WaitForNotificationEv", /*konst=*/true));
  Call(real, this);
  __tsan_acquire(Addr(this));
}
bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      Mangled("12Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
              /*konst=*/true));
  const bool notified = Call(real, this, timeout);
  if (notified) __tsan_acquire(Addr(this));
  return notified;
}
bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      Mangled("12Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
              /*konst=*/true));
  const bool notified = Call(real, this, deadline);
  if (notified) __tsan_acquire(Addr(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
