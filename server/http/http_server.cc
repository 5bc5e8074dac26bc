#include "server/http/http_server.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "httplib.h"
#include "server/http/json.h"
#include "server/http/metrics.h"
#include "server/http/sweep_routes.h"
#include "server/http/web_resources.h"
#include "server/log.h"

namespace nnlab::server {
namespace {

constexpr char kCookie[] = "nnlab_session";
constexpr int kMaxSessions = 1000;
constexpr absl::Duration kSessionLifetime = absl::Hours(12);

int HttpCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void SetError(httplib::Response& res, int code, absl::string_view message) {
  res.status = code;
  res.set_content(absl::StrCat("{\"error\":", JsonString(message), "}\n"),
                  "application/json");
}

void SetError(httplib::Response& res, const absl::Status& s) {
  SetError(res, HttpCode(s.code()), s.message());
}

// 32 random bytes as hex, from the kernel.
std::string RandomId() {
  unsigned char bytes[32] = {};
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  NNLAB_CHECK(fd >= 0);
  NNLAB_CHECK(read(fd, bytes, sizeof bytes) == sizeof bytes);
  close(fd);
  std::string out;
  for (unsigned char b : bytes)
    absl::StrAppend(&out, absl::Hex(b, absl::kZeroPad2));
  return out;
}

// The value of cookie `name` in a Cookie header, or "".
std::string CookieValue(const std::string& header, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

absl::StatusOr<int64_t> ParseStep(absl::string_view what,
                                  const std::string& text) {
  int64_t v = 0;
  if (text.size() > 19 || !absl::SimpleAtoi(text, &v) || v < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a step number >= 0"));
  }
  return v;
}

std::string StateName(v1::JobState s) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::JobState_Name(s), "JOB_STATE_"));
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  const ServiceContext* c = nullptr;
  Sources sources;
  std::unique_ptr<httplib::Server> http;
  bool tls = false;
  int port = 0;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<int> streams{0};
  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  std::map<std::string, absl::Time> sessions ABSL_GUARDED_BY(mu);
  // Events as JSON, shared by the streams of one job: N browsers on a job
  // cost one conversion per event, not N. FIFO, kJsonCache entries.
  static constexpr size_t kJsonCache = 8192;
  absl::Mutex json_mu;
  std::map<std::pair<std::string, int64_t>, std::shared_ptr<const std::string>>
      json ABSL_GUARDED_BY(json_mu);
  std::deque<std::pair<std::string, int64_t>> json_order
      ABSL_GUARDED_BY(json_mu);

  // The event as JSON (from the cache when another stream converted it).
  std::shared_ptr<const std::string> EventJson(const std::string& job,
                                               const v1::MetricEvent& e);

  // Bearer header (exactly one) or a live session cookie; the token is
  // compared in constant time (ConstantTimeEquals, as for gRPC).
  bool Authorized(const httplib::Request& req, bool* by_cookie);
  void Install();
  void Metrics(httplib::Response& res);
  void Events(const httplib::Request& req, httplib::Response& res);
  void Action(const httplib::Request& req, httplib::Response& res);
  void Login(const httplib::Request& req, httplib::Response& res);
  void Sweeps(const httplib::Request& req, httplib::Response& res);
  void Static(const std::string& path, httplib::Response& res);
};

std::shared_ptr<const std::string> HttpServer::Impl::EventJson(
    const std::string& job, const v1::MetricEvent& e) {
  // dropped_events is the one field that differs between watchers.
  if (e.dropped_events() != 0) {
    return std::make_shared<const std::string>(ProtoToJson(e));
  }
  const std::pair<std::string, int64_t> key(job, e.sequence());
  {
    absl::MutexLock lock(&json_mu);
    auto it = json.find(key);
    if (it != json.end()) return it->second;
  }
  auto out = std::make_shared<const std::string>(ProtoToJson(e));
  absl::MutexLock lock(&json_mu);
  if (json.emplace(key, out).second) {
    json_order.push_back(key);
    if (json_order.size() > kJsonCache) {
      json.erase(json_order.front());
      json_order.pop_front();
    }
  }
  return out;
}

bool HttpServer::Impl::Authorized(const httplib::Request& req,
                                  bool* by_cookie) {
  *by_cookie = false;
  if (c->token.empty()) return true;
  if (req.get_header_value_count("Authorization") == 1) {
    return ConstantTimeEquals(req.get_header_value("Authorization"),
                              absl::StrCat("Bearer ", c->token));
  }
  if (req.get_header_value_count("Authorization") > 1) return false;
  const std::string session =
      CookieValue(req.get_header_value("Cookie"), kCookie);
  if (session.empty()) return false;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu);
  bool found = false;
  // Every session compared, so the time taken does not tell which matched.
  for (const auto& [id, expiry] : sessions) {
    if (ConstantTimeEquals(session, id) && expiry > now) found = true;
  }
  *by_cookie = found;
  return found;
}

void HttpServer::Impl::Static(const std::string& path, httplib::Response& res) {
  const WebResource* r = FindWebResource(path);
  if (r == nullptr) {
    SetError(res, 404, "no such file");
    return;
  }
  res.set_content(reinterpret_cast<const char*>(r->data), r->size,
                  r->content_type);
}

void HttpServer::Impl::Login(const httplib::Request& req,
                             httplib::Response& res) {
  // httplib merges query and form parameters; a token in the URL would end
  // up in logs and browser history, so it is refused, not used.
  if (req.target.find('?') != std::string::npos) {
    return SetError(res, 400,
                    "send the token in the form body, never in the URL");
  }
  const std::string given = req.get_param_value("token");
  if (c->token.empty() || !ConstantTimeEquals(given, c->token)) {
    res.status = 401;
    const WebResource* page = FindWebResource("login.html");
    res.set_content(reinterpret_cast<const char*>(page->data), page->size,
                    page->content_type);
    return;
  }
  const std::string id = RandomId();
  {
    absl::MutexLock lock(&mu);
    const absl::Time now = absl::Now();
    for (auto it = sessions.begin(); it != sessions.end();) {
      it = it->second <= now ? sessions.erase(it) : std::next(it);
    }
    if (sessions.size() >= kMaxSessions) sessions.erase(sessions.begin());
    sessions[id] = now + kSessionLifetime;
  }
  res.set_header("Set-Cookie",
                 absl::StrCat(kCookie, "=", id,
                              "; Path=/; HttpOnly; SameSite=Strict; Max-Age=",
                              absl::ToInt64Seconds(kSessionLifetime),
                              tls ? "; Secure" : ""));
  res.set_redirect("/", 303);
}

void HttpServer::Impl::Metrics(httplib::Response& res) {
  ExpositionWriter w;
  const std::vector<v1::Job> jobs =
      c->jobs->List("", v1::JOB_STATE_UNSPECIFIED);
  std::map<std::string, int> by_state;
  for (int s = v1::JOB_STATE_QUEUED; s <= v1::JOB_STATE_FAILED; ++s) {
    by_state[StateName(static_cast<v1::JobState>(s))] = 0;
  }
  for (const v1::Job& j : jobs) ++by_state[StateName(j.state())];
  w.Family("nnlab_jobs", "gauge", "Jobs the server holds, by state.");
  for (const auto& [state, n] : by_state) w.Sample({{"state", state}}, n);

  auto job_labels = [](const v1::Job& j) -> MetricLabels {
    return {{"job_id", j.job_id()},
            {"model_id", j.spec().model_id()},
            {"label", j.spec().label()}};
  };
  w.Family("nnlab_job_steps_total", "counter",
           "Training steps a job has completed.");
  for (const v1::Job& j : jobs) w.Sample(job_labels(j), j.step());
  w.Family("nnlab_job_samples_total", "counter",
           "Training samples a job has seen (steps times batch size).");
  for (const v1::Job& j : jobs) {
    w.Sample(job_labels(j),
             static_cast<double>(j.step()) * j.spec().batch_size());
  }
  w.Family("nnlab_job_samples_per_second", "gauge",
           "Training throughput of a running job.");
  for (const v1::Job& j : jobs) {
    if (j.state() == v1::JOB_STATE_RUNNING) {
      w.Sample(job_labels(j), j.samples_per_sec());
    }
  }
  w.Family("nnlab_job_loss", "gauge",
           "Last training-batch loss of a running job.");
  for (const v1::Job& j : jobs) {
    if (j.state() == v1::JOB_STATE_RUNNING) {
      w.Sample(job_labels(j), j.last_loss());
    }
  }

  if (sources.rpc != nullptr) {
    const auto rpc = sources.rpc->Read();
    auto split = [](const std::string& path) -> MetricLabels {
      // "/pkg.Service/Method"
      std::vector<std::string> parts = absl::StrSplit(path, '/');
      if (parts.size() == 3) {
        return {{"service", parts[1]}, {"method", parts[2]}};
      }
      return {{"service", ""}, {"method", path}};
    };
    w.Family("nnlab_rpc_handled_total", "counter",
             "gRPC calls completed, by method and status code.");
    for (const auto& [method, m] : rpc) {
      for (const auto& [code, n] : m.by_code) {
        MetricLabels l = split(method);
        l.emplace_back("code", absl::StatusCodeToString(
                                   static_cast<absl::StatusCode>(code)));
        w.Sample(l, static_cast<double>(n));
      }
    }
    w.Family("nnlab_rpc_duration_seconds", "histogram",
             "gRPC call latency, from the call's start to its status.");
    for (const auto& [method, m] : rpc) w.Histogram(split(method), m.latency);
  }
  w.Family("nnlab_checkpoint_write_duration_seconds", "histogram",
           "Time to write one checkpoint file (temp, fsync, rename).");
  w.Histogram({}, Telemetry().checkpoint_write_seconds.Read());
  w.Family("nnlab_watcher_events_dropped_total", "counter",
           "Metric events watchers missed because they fell behind.");
  w.Sample({}, static_cast<double>(Telemetry().watcher_events_dropped.load()));
  w.Family("nnlab_event_streams", "gauge",
           "Metric streams open now, by transport.");
  w.Sample({{"transport", "grpc"}},
           sources.grpc_streams ? sources.grpc_streams() : 0);
  w.Sample({{"transport", "sse"}}, streams.load());
  const ProcessStats p = ReadProcessStats();
  w.Family("process_resident_memory_bytes", "gauge",
           "Resident memory size in bytes.");
  w.Sample({}, static_cast<double>(p.resident_bytes));
  w.Family("process_threads", "gauge", "Threads of the process.");
  w.Sample({}, static_cast<double>(p.threads));
  res.set_content(w.Take(), "text/plain; version=0.0.4; charset=utf-8");
}

void HttpServer::Impl::Events(const httplib::Request& req,
                              httplib::Response& res) {
  const std::string id = req.matches[1];
  Watcher::Options o;
  if (req.has_header("Last-Event-ID")) {
    absl::StatusOr<int64_t> step =
        ParseStep("Last-Event-ID", req.get_header_value("Last-Event-ID"));
    if (!step.ok()) return SetError(res, step.status());
    // Events of that step again (an evaluation may follow the training
    // event of the same step); the page skips sequences it has seen.
    o.from_step = *step;
  } else if (req.has_param("from_step")) {
    absl::StatusOr<int64_t> step =
        ParseStep("from_step", req.get_param_value("from_step"));
    if (!step.ok()) return SetError(res, step.status());
    o.from_step = *step;
  }
  if (streams.fetch_add(1) >= options.max_streams) {
    streams.fetch_sub(1);
    return SetError(res, 503, "too many event streams open; try again later");
  }
  absl::StatusOr<std::unique_ptr<Watcher>> w = c->jobs->Watch(id, o);
  if (!w.ok()) {
    streams.fetch_sub(1);
    return SetError(res, w.status());
  }
  // The provider runs on this connection's thread until the job ends, the
  // browser leaves or the server stops; the watcher buffers what a slow
  // browser has not taken, as for any watcher.
  struct Stream {
    std::unique_ptr<Watcher> watcher;
    std::atomic<int>* open;
    absl::Time last_write = absl::Now();
    ~Stream() { open->fetch_sub(1); }
  };
  auto s = std::make_shared<Stream>();
  s->watcher = std::move(*w);
  s->open = &streams;
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [this, s, id](size_t, httplib::DataSink& sink) {
        if (stopping.load() || c->shutting_down.load()) return false;
        std::string out;
        v1::MetricEvent e;
        bool ended = false;
        absl::Duration wait = absl::Milliseconds(500);
        // Up to 64 events per write: fewer syscalls while replaying.
        for (int n = 0; n < 64; ++n) {
          const Watcher::Result r = s->watcher->Next(wait, &e);
          wait = absl::ZeroDuration();
          if (r == Watcher::Result::kTimeout) break;
          if (r == Watcher::Result::kEnded) {
            ended = true;
            break;
          }
          absl::StrAppend(&out, "id: ", e.step(), "\ndata: ", *EventJson(id, e),
                          "\n\n");
        }
        if (ended) absl::StrAppend(&out, "event: end\ndata: {}\n\n");
        const absl::Time now = absl::Now();
        if (out.empty() && now - s->last_write > absl::Seconds(15)) {
          out = ": keep-alive\n\n";  // Finds browsers that went away.
        }
        if (!out.empty()) {
          if (!sink.write(out.data(), out.size())) return false;
          s->last_write = now;
        }
        if (ended) sink.done();
        return true;
      });
}

void HttpServer::Impl::Action(const httplib::Request& req,
                              httplib::Response& res) {
  const std::string id = req.matches[1];
  const std::string action = req.matches[2];
  absl::StatusOr<v1::Job> job;
  if (action == "pause") {
    job = c->jobs->Pause(id);
  } else if (action == "resume") {
    job = c->jobs->Resume(id);
  } else {
    job = c->jobs->Cancel(id);
  }
  if (!job.ok()) return SetError(res, job.status());
  LogInfo(absl::StrCat("http: job ", id, " ", action));
  res.set_content(ProtoToJson(*job), "application/json");
}

void HttpServer::Impl::Sweeps(const httplib::Request& req,
                              httplib::Response& res) {
  if (sources.sweeps == nullptr) return SetError(res, 404, "no sweeps here");
  const std::string id = req.matches[1];
  absl::StatusOr<std::string> body;
  if (id.empty()) {
    body = SweepListJson(*sources.sweeps);
  } else if (req.matches[2].length() == 0) {
    body = SweepJson(*sources.sweeps, id);
  } else {
    body = SweepCurvesJson(*sources.sweeps, *c->jobs, id,
                           req.get_param_value("layer"));
  }
  if (!body.ok()) return SetError(res, body.status());
  res.set_header("Cache-Control", "no-store");
  res.set_content(*body, "application/json");
}

void HttpServer::Impl::Install() {
  httplib::Server& s = *http;
  s.new_task_queue = [n = options.threads] {
    return new httplib::ThreadPool(static_cast<size_t>(n));
  };
  s.set_payload_max_length(options.max_body_bytes);
  // Idle keep-alive connections and slow requests each hold a pool thread
  // (and delay Shutdown) for at most these.
  s.set_keep_alive_timeout(2);
  s.set_read_timeout(5);
  // A browser that has not taken any bytes for 3 s is dropped (its
  // EventSource reconnects and resumes at Last-Event-ID); this also bounds
  // how long a stalled stream can hold up Shutdown.
  s.set_write_timeout(3);
  s.set_default_headers({
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Content-Security-Policy",
       "default-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; frame-ancestors 'none'"},
  });
  // Authentication before routing: unknown paths are refused like known
  // ones, so nothing about the routes shows without the token.
  s.set_pre_routing_handler([this](const httplib::Request& req,
                                   httplib::Response& res) {
    using R = httplib::Server::HandlerResponse;
    if (req.path == "/healthz") return R::Unhandled;
    if (req.path == "/login" && req.method == "POST") return R::Unhandled;
    bool by_cookie = false;
    if (!Authorized(req, &by_cookie)) {
      if (req.method == "GET" && (req.path == "/" || req.path == "/login")) {
        Static("login.html", res);
        res.status = 401;
      } else {
        SetError(res, 401,
                 "missing or wrong token: send \"Authorization: Bearer "
                 "<token>\" or log in at /");
      }
      res.set_header("WWW-Authenticate", "Bearer realm=\"nnlab\"");
      return R::Handled;
    }
    if (by_cookie && req.method == "POST" &&
        req.get_header_value("X-Nnlab-Request") != "1") {
      SetError(res, 403,
               "a POST with the session cookie needs the header "
               "\"X-Nnlab-Request: 1\"");
      return R::Handled;
    }
    return R::Unhandled;
  });
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    if (c->shutting_down.load() || stopping.load()) {
      res.status = 503;
      res.set_content("shutting down\n", "text/plain");
    } else {
      res.set_content("ok\n", "text/plain");
    }
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Metrics(res);
  });
  s.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    Static("index.html", res);
  });
  s.Get(R"(/static/(.+))",
        [this](const httplib::Request& req, httplib::Response& res) {
          Static(req.matches[1], res);
        });
  s.Post("/login", [this](const httplib::Request& req, httplib::Response& res) {
    Login(req, res);
  });
  s.Post("/logout", [this](const httplib::Request& req,
                           httplib::Response& res) {
    const std::string id = CookieValue(req.get_header_value("Cookie"), kCookie);
    {
      absl::MutexLock lock(&mu);
      sessions.erase(id);
    }
    res.set_header("Set-Cookie",
                   absl::StrCat(kCookie, "=; Path=/; HttpOnly; Max-Age=0"));
    res.set_redirect("/", 303);
  });
  s.Get("/api/jobs", [this](const httplib::Request&, httplib::Response& res) {
    std::string out = "{\"jobs\":[";
    bool first = true;
    for (const v1::Job& j : c->jobs->List("", v1::JOB_STATE_UNSPECIFIED)) {
      absl::StrAppend(&out, first ? "" : ",", ProtoToJson(j));
      first = false;
    }
    out += "]}\n";
    res.set_header("Cache-Control", "no-store");
    res.set_content(out, "application/json");
  });
  s.Get(R"(/api/jobs/([^/]+)/events)",
        [this](const httplib::Request& req, httplib::Response& res) {
          Events(req, res);
        });
  s.Post(R"(/api/jobs/([^/]+)/(pause|resume|cancel))",
         [this](const httplib::Request& req, httplib::Response& res) {
           Action(req, res);
         });
  s.Get(R"(/api/sweeps(?:/([^/]+)(/curves)?)?)",
        [this](const httplib::Request& req, httplib::Response& res) {
          Sweeps(req, res);
        });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    // Routes set their own bodies; give httplib's bare errors one too.
    if (res.body.empty()) {
      SetError(res, res.status,
               res.status == 404   ? "no such route"
               : res.status == 413 ? "request body too large"
               : res.status == 414 ? "request URI too long"
                                   : "bad request");
    }
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Shutdown(); }

int HttpServer::port() const { return impl_->port; }
bool HttpServer::tls() const { return impl_->tls; }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpOptions& o, const ServiceContext* context, Sources sources) {
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  impl->c = context;
  impl->sources = std::move(sources);
  if (o.threads < 4 || o.max_streams < 1 || o.max_streams > o.threads - 2) {
    return absl::InvalidArgumentError(
        "HTTP threads must be >= 4 and event streams between 1 and threads "
        "- 2 (each stream holds a thread)");
  }
  // HOST:PORT, HOST possibly [IPv6].
  const size_t colon = o.listen.rfind(':');
  int port = -1;
  std::string host;
  if (colon != std::string::npos) {
    host = o.listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    if (!absl::SimpleAtoi(o.listen.substr(colon + 1), &port)) port = -1;
  }
  if (host.empty() || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http_listen must be HOST:PORT, got \"", o.listen, "\""));
  }
  if (!o.tls_cert_pem.empty() && !o.tls_key_pem.empty()) {
    const std::string cert = o.tls_cert_pem, key = o.tls_key_pem;
    auto ssl = std::make_unique<httplib::SSLServer>([cert, key](SSL_CTX& ctx) {
      // The PEMs from memory, chain included, as the gRPC port uses them.
      BIO* cb = BIO_new_mem_buf(cert.data(), static_cast<int>(cert.size()));
      BIO* kb = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
      bool ok = cb != nullptr && kb != nullptr;
      X509* leaf =
          ok ? PEM_read_bio_X509(cb, nullptr, nullptr, nullptr) : nullptr;
      ok = leaf != nullptr && SSL_CTX_use_certificate(&ctx, leaf) == 1;
      X509_free(leaf);
      while (ok) {
        X509* extra = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
        if (extra == nullptr) break;
        // add0: the context takes ownership on success.
        if (SSL_CTX_add0_chain_cert(&ctx, extra) != 1) {
          X509_free(extra);
          ok = false;
        }
      }
      ERR_clear_error();  // The end of the chain reads as an error.
      EVP_PKEY* pkey =
          ok ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
      ok = pkey != nullptr && SSL_CTX_use_PrivateKey(&ctx, pkey) == 1 &&
           SSL_CTX_check_private_key(&ctx) == 1;
      EVP_PKEY_free(pkey);
      BIO_free(cb);
      BIO_free(kb);
      SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
      return ok;
    });
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(
          "the TLS certificate or key cannot be used for the HTTP port");
    }
    impl->http = std::move(ssl);
    impl->tls = true;
  } else {
    impl->http = std::make_unique<httplib::Server>();
  }
  impl->Install();
  impl->port = port == 0 ? impl->http->bind_to_any_port(host)
                         : (impl->http->bind_to_port(host, port) ? port : -1);
  if (impl->port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", o.listen,
                     " for HTTP (address in use or bad address)"));
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->http->listen_after_bind(); });
  // stop() does nothing to a server not yet running: Shutdown must not
  // come before the accept loop has started.
  while (!impl->http->is_running()) absl::SleepFor(absl::Milliseconds(1));
  LogInfo(absl::StrCat("HTTP (dashboard, /metrics, /healthz) on port ",
                       impl->port, impl->tls ? " (TLS)" : ""));
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Shutdown() {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  // Event streams see `stopping` within one wait (500 ms) and end; stop()
  // closes the listening socket and joins the pool.
  impl_->stopping.store(true);
  impl_->http->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace nnlab::server
