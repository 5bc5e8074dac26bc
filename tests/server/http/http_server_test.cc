// nnlabd's HTTP port against a real server on loopback: the token on every
// route but /healthz (header and login cookie), clean 4xx answers for
// traversal, oversized requests and bad resumption ids, /metrics and the
// event stream of a running job, pause and cancel from HTTP seen over gRPC.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nnlab/v1/sweep.grpc.pb.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

constexpr char kToken[] = "s3cret-token";

server::ServerOptions HttpOptions(const std::string& token = "") {
  server::ServerOptions o;
  o.http_listen = "127.0.0.1:0";
  o.token = token;
  return o;
}

httplib::Client Http(TestServer& s) {
  httplib::Client c("127.0.0.1", s.server()->http_port());
  c.set_read_timeout(10);
  return c;
}

httplib::Headers Bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

TEST(HttpServerTest, EveryRouteButHealthzNeedsTheToken) {
  TestServer s(HttpOptions(kToken));
  ASSERT_NE(s.server()->http_port(), 0);
  httplib::Client c = Http(s);
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");

  const std::vector<std::string> gets = {"/",
                                         "/metrics",
                                         "/api/jobs",
                                         "/static/app.js",
                                         "/static/nope",
                                         "/api/jobs/j/events",
                                         "/api/sweeps",
                                         "/api/sweeps/s",
                                         "/api/sweeps/s/curves",
                                         "/nope",
                                         "/login"};
  for (const httplib::Headers& h :
       {httplib::Headers{}, Bearer("wrong"), Bearer(""),
        httplib::Headers{{"Authorization", std::string("Basic ") + kToken}},
        httplib::Headers{{"Cookie", "nnlab_session=forged"}}}) {
    for (const std::string& path : gets) {
      auto r = c.Get(path, h);
      ASSERT_TRUE(r) << path;
      EXPECT_EQ(r->status, 401) << path;
      EXPECT_FALSE(absl::StrContains(r->body, "nnlab_jobs")) << path;
    }
    for (const std::string path :
         {"/api/jobs/j/pause", "/api/jobs/j/cancel", "/logout"}) {
      auto r = c.Post(path, h, "", "text/plain");
      ASSERT_TRUE(r) << path;
      EXPECT_EQ(r->status, 401) << path;
    }
  }
  // Two Authorization headers: ambiguous, refused even if one is right.
  httplib::Headers two = Bearer(kToken);
  two.emplace("Authorization", "Bearer wrong");
  auto r = c.Get("/api/jobs", two);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);

  // With the token.
  for (const std::string path : {"/", "/metrics", "/api/jobs", "/static/app.js",
                                 "/static/uplot.min.js", "/api/sweeps"}) {
    auto ok = c.Get(path, Bearer(kToken));
    ASSERT_TRUE(ok) << path;
    EXPECT_EQ(ok->status, 200) << path;
  }
  auto missing = c.Get("/nope", Bearer(kToken));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto no_job =
      c.Post("/api/jobs/nojob/pause", Bearer(kToken), "", "text/plain");
  ASSERT_TRUE(no_job);
  EXPECT_EQ(no_job->status, 404);
}

TEST(HttpServerTest, LoginSetsAnHttpOnlySessionCookie) {
  TestServer s(HttpOptions(kToken));
  httplib::Client c = Http(s);
  auto bad =
      c.Post("/login", "token=wrong", "application/x-www-form-urlencoded");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 401);
  EXPECT_FALSE(bad->has_header("Set-Cookie"));

  // Never from the URL, even when right.
  auto in_url = c.Post(absl::StrCat("/login?token=", kToken), "",
                       "application/x-www-form-urlencoded");
  ASSERT_TRUE(in_url);
  EXPECT_EQ(in_url->status, 400);
  EXPECT_FALSE(in_url->has_header("Set-Cookie"));

  auto good = c.Post("/login", absl::StrCat("token=", kToken),
                     "application/x-www-form-urlencoded");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 303);
  const std::string cookie = good->get_header_value("Set-Cookie");
  EXPECT_TRUE(absl::StrContains(cookie, "HttpOnly")) << cookie;
  EXPECT_TRUE(absl::StrContains(cookie, "SameSite=Strict")) << cookie;
  EXPECT_FALSE(absl::StrContains(cookie, kToken)) << cookie;
  const std::string session = std::string(
      absl::StrSplit(cookie, ';').begin()->data(), cookie.find(';'));
  httplib::Headers with_cookie = {{"Cookie", session}};
  auto jobs = c.Get("/api/jobs", with_cookie);
  ASSERT_TRUE(jobs);
  EXPECT_EQ(jobs->status, 200);
  EXPECT_EQ(jobs->body, "{\"jobs\":[]}\n");
  // A POST on the cookie alone could come from another site's form.
  auto csrf = c.Post("/api/jobs/nojob/pause", with_cookie, "", "text/plain");
  ASSERT_TRUE(csrf);
  EXPECT_EQ(csrf->status, 403);
  with_cookie.emplace("X-Nnlab-Request", "1");
  auto pause = c.Post("/api/jobs/nojob/pause", with_cookie, "", "text/plain");
  ASSERT_TRUE(pause);
  EXPECT_EQ(pause->status, 404);
  // Logged out: the session no longer works.
  auto out = c.Post("/logout", with_cookie, "", "text/plain");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 303);
  auto after = c.Get("/api/jobs", {{"Cookie", session}});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 401);
}

TEST(HttpServerTest, TraversalOversizeAndBadResumeIdsAreClean4xx) {
  TestServer s(HttpOptions(kToken));
  httplib::Client c = Http(s);
  for (const std::string path :
       {"/static/../../../etc/passwd", "/static/..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/CMakeLists.txt", "/static//etc/passwd",
        "/static/web/index.html", "/../server/http/web/index.html",
        "/static/index.html%00.js"}) {
    auto r = c.Get(path, Bearer(kToken));
    ASSERT_TRUE(r) << path;
    EXPECT_GE(r->status, 400) << path;
    EXPECT_LT(r->status, 500) << path;
    EXPECT_FALSE(absl::StrContains(r->body, "root:")) << path;
  }
  // A body over the limit (64 KiB), a URI over httplib's 8 KiB.
  auto big = c.Post("/login", std::string(100 << 10, 'a'),
                    "application/x-www-form-urlencoded");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  auto long_uri =
      c.Get("/api/jobs?x=" + std::string(10000, 'a'), Bearer(kToken));
  ASSERT_TRUE(long_uri);
  EXPECT_EQ(long_uri->status, 414);
  for (const std::string id :
       {"abc", "-1", "1.5", "3 4", "0x10", "99999999999999999999999"}) {
    httplib::Headers h = Bearer(kToken);
    h.emplace("Last-Event-ID", id);
    auto r = c.Get("/api/jobs/somejob/events", h);
    ASSERT_TRUE(r) << id;
    EXPECT_EQ(r->status, 400) << "'" << id << "'";
    EXPECT_TRUE(absl::StrContains(r->body, "Last-Event-ID")) << r->body;
  }
  auto bad_from = c.Get("/api/jobs/somejob/events?from_step=x", Bearer(kToken));
  ASSERT_TRUE(bad_from);
  EXPECT_EQ(bad_from->status, 400);
  auto bad_id = c.Get("/api/jobs/bad%20id!/events", Bearer(kToken));
  ASSERT_TRUE(bad_id);
  EXPECT_EQ(bad_id->status, 400);
}

// A job on the MNIST digits that cannot finish while a test runs
// (12.5 million steps), with per-layer statistics on every step.
v1::Job StartLongJob(Client& g) {
  CreateModel(g, MlpSpec(784, 32, 10), "net");
  v1::JobSpec spec;
  spec.set_model_id("net");
  spec.set_dataset("mnist");
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.05f);
  spec.set_epochs(10000);
  spec.set_batch_size(8);
  spec.set_stats_every(1);
  spec.set_label("http \"test\"");
  return StartJob(g, spec);
}

// The "step" values of the data lines of an event stream.
std::vector<int64_t> Steps(const std::string& sse) {
  std::vector<int64_t> steps;
  for (absl::string_view line : absl::StrSplit(sse, '\n')) {
    if (!absl::ConsumePrefix(&line, "id: ")) continue;
    int64_t v = 0;
    EXPECT_TRUE(absl::SimpleAtoi(line, &v)) << line;
    steps.push_back(v);
  }
  return steps;
}

TEST(HttpServerTest, MetricsEventsAndActionsOnARunningJob) {
  TestServer s(HttpOptions());
  Client g = s.MakeClient();
  const v1::Job job = StartLongJob(g);
  WaitForStep(g, job.job_id(), 20);

  httplib::Client c = Http(s);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_TRUE(absl::StartsWith(m->get_header_value("Content-Type"),
                               "text/plain; version=0.0.4"));
  EXPECT_TRUE(absl::StrContains(m->body, "nnlab_jobs{state=\"running\"} 1\n"))
      << m->body;
  const std::string steps_prefix =
      absl::StrCat("nnlab_job_steps_total{job_id=\"", job.job_id(),
                   "\",model_id=\"net\",label=\"http \\\"test\\\"\"} ");
  const size_t at = m->body.find(steps_prefix);
  ASSERT_NE(at, std::string::npos) << m->body;
  int64_t steps = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      m->body.substr(at + steps_prefix.size(),
                     m->body.find('\n', at) - at - steps_prefix.size()),
      &steps));
  EXPECT_GE(steps, 20);
  EXPECT_TRUE(absl::StrContains(
      m->body,
      "nnlab_rpc_handled_total{service=\"nnlab.v1.TrainingService\","
      "method=\"StartJob\",code=\"OK\"} 1\n"))
      << m->body;
  EXPECT_TRUE(absl::StrContains(
      m->body,
      "nnlab_rpc_duration_seconds_count{service=\"nnlab.v1.TrainingService\","
      "method=\"StartJob\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(m->body, "process_threads "));

  // The live stream: read until 30 events have come, then leave.
  std::string sse;
  auto r = c.Get(absl::StrCat("/api/jobs/", job.job_id(), "/events"),
                 [&](const char* data, size_t n) {
                   sse.append(data, n);
                   return Steps(sse).size() < 30;
                 });
  EXPECT_FALSE(r);  // We cancelled it.
  std::vector<int64_t> seen = Steps(sse);
  ASSERT_GE(seen.size(), 30u) << sse;
  EXPECT_TRUE(absl::StrContains(sse, "\"layers\":[{\"name\""));
  // Resuming from an id replays from that step on.
  const int64_t resume = seen.back();
  std::string again;
  auto r2 = c.Get(absl::StrCat("/api/jobs/", job.job_id(), "/events"),
                  {{"Last-Event-ID", absl::StrCat(resume)}},
                  [&](const char* data, size_t n) {
                    again.append(data, n);
                    return Steps(again).size() < 5;
                  });
  std::vector<int64_t> resumed = Steps(again);
  ASSERT_FALSE(resumed.empty());
  EXPECT_EQ(resumed.front(), resume);
  for (int64_t step : resumed) EXPECT_GE(step, resume);

  // Pause from HTTP, seen over gRPC; resume; cancel.
  auto pause = c.Post(absl::StrCat("/api/jobs/", job.job_id(), "/pause"), "",
                      "text/plain");
  ASSERT_TRUE(pause);
  EXPECT_EQ(pause->status, 200) << pause->body;
  EXPECT_EQ(WaitForJob(g, job.job_id()).state(), v1::JOB_STATE_PAUSED);
  auto resume_r = c.Post(absl::StrCat("/api/jobs/", job.job_id(), "/resume"),
                         "", "text/plain");
  ASSERT_TRUE(resume_r);
  EXPECT_EQ(resume_r->status, 200) << resume_r->body;
  auto cancel = c.Post(absl::StrCat("/api/jobs/", job.job_id(), "/cancel"), "",
                       "text/plain");
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->status, 200);
  EXPECT_EQ(WaitForJob(g, job.job_id()).state(), v1::JOB_STATE_CANCELLED);
  auto twice = c.Post(absl::StrCat("/api/jobs/", job.job_id(), "/pause"), "",
                      "text/plain");
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->status, 409);

  // The ended job's whole history, then "event: end" and the stream closes.
  auto all = c.Get(absl::StrCat("/api/jobs/", job.job_id(), "/events"));
  ASSERT_TRUE(all);
  EXPECT_EQ(all->status, 200);
  EXPECT_TRUE(absl::EndsWith(all->body, "event: end\ndata: {}\n\n"));
  const std::vector<int64_t> history = Steps(all->body);
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.front(), 0);
  EXPECT_GE(history.back(), resumed.back());
}

// With the gRPC side's certificate the HTTP port speaks only HTTPS, with
// the whole chain, and the session cookie is Secure.
TEST(HttpServerTest, TlsWhenGrpcHasIt) {
  TempDir certs;
  const std::string d = certs.path();
  MakeCa(d, "ca");
  MakeCert(d, "ca", "server");
  server::ServerOptions o = HttpOptions(kToken);
  // Leaf then CA: the chain is sent whole.
  o.tls_cert_pem = ReadText(d + "/server.pem") + ReadText(d + "/ca.pem");
  o.tls_key_pem = ReadText(d + "/server.key");
  TestServer s(o);
  ASSERT_NE(s.server()->http_port(), 0);

  // The chain verifies against the CA, for the loopback IP.
  Shell(absl::StrCat("openssl s_client -connect 127.0.0.1:",
                     s.server()->http_port(), " -CAfile ", d,
                     "/ca.pem -verify_return_error -verify_ip 127.0.0.1 "
                     "</dev/null"));
  httplib::SSLClient tls("127.0.0.1", s.server()->http_port());
  tls.set_ca_cert_path((d + "/ca.pem").c_str());
  tls.enable_server_certificate_verification(true);
  auto health = tls.Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  auto metrics = tls.Get("/metrics", Bearer(kToken));
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  auto login = tls.Post("/login", absl::StrCat("token=", kToken),
                        "application/x-www-form-urlencoded");
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, 303);
  EXPECT_TRUE(
      absl::StrContains(login->get_header_value("Set-Cookie"), "; Secure"));

  // Plain HTTP on the TLS port gets no answer.
  httplib::Client plain = Http(s);
  plain.set_read_timeout(2);
  auto r = plain.Get("/healthz");
  EXPECT_FALSE(r && r->status == 200);
}

// The sse streams gauge from /metrics, or -1.
int SseStreams(httplib::Client& c) {
  auto m = c.Get("/metrics");
  if (!m || m->status != 200) return -1;
  const std::string key = "nnlab_event_streams{transport=\"sse\"} ";
  const size_t at = m->body.find(key);
  int n = -1;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(m->body.substr(at + key.size(), m->body.find('\n', at) -
                                                            at - key.size()),
                        &n)) {
    return -1;
  }
  return n;
}

// A browser that stops reading: training goes on at its pace, the server
// keeps answering, and the stalled stream is dropped (write timeout).
TEST(HttpServerTest, StalledBrowserNeverHoldsUpTraining) {
  TestServer s(HttpOptions());
  Client g = s.MakeClient();
  const v1::Job job = StartLongJob(g);
  WaitForStep(g, job.job_id(), 5);

  // A raw connection with a tiny receive buffer that never reads.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  int small = 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s.server()->http_port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string req = absl::StrCat("GET /api/jobs/", job.job_id(),
                                       "/events HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(write(fd, req.data(), req.size()),
            static_cast<ssize_t>(req.size()));

  httplib::Client c = Http(s);
  // The stream opens (and stays open at least until a write stalls 3 s).
  const auto opened = absl::Now() + absl::Seconds(2);
  while (SseStreams(c) != 1 && absl::Now() < opened) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(SseStreams(c), 1);
  const int64_t start = GetJob(g, job.job_id()).step();
  // Training moves on far past what the stalled stream could have taken.
  WaitForStep(g, job.job_id(), start + 2000);
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  // The stream was open, then is dropped once a write stalls for 3 s.
  const auto deadline = absl::Now() + absl::Seconds(30);
  int open = SseStreams(c);
  while (open != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    open = SseStreams(c);
  }
  EXPECT_EQ(open, 0);
  EXPECT_EQ(GetJob(g, job.job_id()).state(), v1::JOB_STATE_RUNNING);
  close(fd);
  Cancel(g, job.job_id());
}

// The JSON body of a 200 answer as a Struct (fails the test otherwise).
google::protobuf::Struct GetJson(httplib::Client& c, const std::string& path) {
  google::protobuf::Struct out;
  auto r = c.Get(path);
  EXPECT_TRUE(r) << path;
  if (!r) return out;
  EXPECT_EQ(r->status, 200) << path << " " << r->body;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r->body, &out).ok())
      << r->body;
  return out;
}

const google::protobuf::ListValue& List(const google::protobuf::Struct& s,
                                        const std::string& key) {
  return s.fields().at(key).list_value();
}

// A finished two-trial sweep seen through the dashboard's routes: the
// ranked trials, labels naming the learning rate (what differs), and each
// trial's curves with one point per step.
TEST(HttpServerTest, SweepRoutesGiveRankedTrialsLabelsAndCurves) {
  TestServer s(HttpOptions());
  Client g = s.MakeClient();
  const std::string data = UploadBlobs(g, 1024, 64);
  v1::SweepSpec spec;
  *spec.mutable_model() = MlpSpec(2, 8, 2);
  spec.set_name("http sweep");
  v1::JobSpec* j = spec.mutable_job();
  j->set_dataset(data);
  j->set_batch_size(8);
  j->set_epochs(10000);
  j->set_max_steps(20);
  j->set_eval_every_steps(5);
  j->set_stats_every(2);
  j->mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  v1::SweepAxis* lr = spec.add_axes();
  lr->set_field("job.optimizer.learning_rate");
  lr->add_values("0.5");
  lr->add_values("1e-9");
  v1::SweepAxis* seed = spec.add_axes();  // The same in both: not a label.
  seed->set_field("model.seed");
  seed->add_values("3");
  spec.set_max_concurrent(2);
  auto stub = v1::SweepService::NewStub(s.Channel());
  v1::StartSweepRequest req;
  *req.mutable_spec() = spec;
  v1::Sweep sweep;
  {
    auto ctx = Ctx();
    grpc::Status st = stub->StartSweep(ctx.get(), req, &sweep);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  const std::string id = sweep.sweep_id();
  const auto end = Deadline(60);
  while (sweep.state() != v1::SWEEP_STATE_COMPLETED &&
         std::chrono::system_clock::now() < end) {
    usleep(50000);
    v1::GetSweepRequest get;
    get.set_sweep_id(id);
    auto ctx = Ctx();
    ASSERT_TRUE(stub->GetSweep(ctx.get(), get, &sweep).ok());
  }
  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED) << sweep.DebugString();

  httplib::Client c = Http(s);
  const google::protobuf::Struct list = GetJson(c, "/api/sweeps");
  ASSERT_EQ(List(list, "sweeps").values_size(), 1);
  const google::protobuf::Struct& listed =
      List(list, "sweeps").values(0).struct_value();
  EXPECT_EQ(listed.fields()
                .at("sweep")
                .struct_value()
                .fields()
                .at("sweep_id")
                .string_value(),
            id);

  const google::protobuf::Struct one = GetJson(c, "/api/sweeps/" + id);
  const google::protobuf::Struct& sw = one.fields().at("sweep").struct_value();
  EXPECT_EQ(sw.fields().at("state").string_value(), "SWEEP_STATE_COMPLETED");
  EXPECT_EQ(
      sw.fields().at("spec").struct_value().fields().at("name").string_value(),
      "http sweep");
  // Ranked: the lr 0.5 trial learns, the 1e-9 one cannot beat it.
  ASSERT_EQ(List(sw, "ranking").values_size(), 2);
  EXPECT_EQ(List(sw, "ranking").values(0).number_value(), 0);
  ASSERT_EQ(List(sw, "trials").values_size(), 2);
  for (int i = 0; i < 2; ++i) {
    const auto& t = List(sw, "trials").values(i).struct_value().fields();
    EXPECT_EQ(t.at("state").string_value(), "JOB_STATE_COMPLETED");
    EXPECT_TRUE(t.at("has_metric").bool_value());
  }
  ASSERT_EQ(List(one, "labels").values_size(), 2);
  EXPECT_EQ(List(one, "labels").values(0).string_value(),
            "job.optimizer.learning_rate=0.5");
  EXPECT_EQ(List(one, "labels").values(1).string_value(),
            "job.optimizer.learning_rate=1e-9");

  const google::protobuf::Struct curves =
      GetJson(c, "/api/sweeps/" + id + "/curves");
  ASSERT_GE(List(curves, "layers").values_size(), 2);
  const std::string first = List(curves, "layers").values(0).string_value();
  const std::string second = List(curves, "layers").values(1).string_value();
  EXPECT_EQ(curves.fields().at("layer").string_value(), first);
  ASSERT_EQ(List(curves, "trials").values_size(), 2);
  for (int i = 0; i < 2; ++i) {
    const google::protobuf::Struct& t =
        List(curves, "trials").values(i).struct_value();
    EXPECT_EQ(t.fields().at("index").number_value(), i);
    EXPECT_EQ(t.fields().at("job_id").string_value(), sweep.trials(i).job_id());
    EXPECT_EQ(t.fields().at("label").string_value(),
              List(one, "labels").values(i).string_value());
    // Steps 1..20, each with a finite loss.
    ASSERT_EQ(List(t, "step").values_size(), 20);
    ASSERT_EQ(List(t, "train_loss").values_size(), 20);
    for (int k = 0; k < 20; ++k) {
      EXPECT_EQ(List(t, "step").values(k).number_value(), k + 1);
      EXPECT_GT(List(t, "train_loss").values(k).number_value(), 0);
    }
    // Evaluations every 5 steps, accuracies in [0, 1].
    ASSERT_GE(List(t, "eval_step").values_size(), 4);
    ASSERT_EQ(List(t, "test_acc").values_size(),
              List(t, "eval_step").values_size());
    for (const auto& a : List(t, "test_acc").values()) {
      EXPECT_GE(a.number_value(), 0);
      EXPECT_LE(a.number_value(), 1);
    }
    // Learning speed on the steps stats_every selects.
    ASSERT_GE(List(t, "speed_step").values_size(), 5);
    EXPECT_EQ(List(t, "speed").values_size(),
              List(t, "speed_step").values_size());
    EXPECT_GT(List(t, "speed").values(0).number_value(), 0);
  }
  // The best trial learned: its last test accuracy is above chance.
  const google::protobuf::Struct& best =
      List(curves, "trials").values(0).struct_value();
  EXPECT_GT(List(best, "test_acc")
                .values(List(best, "test_acc").values_size() - 1)
                .number_value(),
            0.7);
  // Another layer on request; an unknown one falls back to the first.
  const google::protobuf::Struct other =
      GetJson(c, "/api/sweeps/" + id + "/curves?layer=" + second);
  EXPECT_EQ(other.fields().at("layer").string_value(), second);
  EXPECT_NE(List(List(other, "trials").values(0).struct_value(), "speed")
                .values(0)
                .number_value(),
            List(List(curves, "trials").values(0).struct_value(), "speed")
                .values(0)
                .number_value());
  EXPECT_EQ(GetJson(c, "/api/sweeps/" + id + "/curves?layer=nope")
                .fields()
                .at("layer")
                .string_value(),
            first);

  for (const std::string bad :
       {"/api/sweeps/nosuch", "/api/sweeps/nosuch/curves"}) {
    auto r = c.Get(bad);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << bad << " " << r->body;
    EXPECT_TRUE(absl::StrContains(r->body, "\"error\"")) << r->body;
  }
  auto bad_id = c.Get("/api/sweeps/a%20b");
  ASSERT_TRUE(bad_id);
  EXPECT_EQ(bad_id->status, 400) << bad_id->body;
}

TEST(HttpServerTest, BadAddressIsAnError) {
  server::ServerOptions o = HttpOptions();
  for (const std::string bad : {"nohostport", "127.0.0.1:99999", ":80"}) {
    o.http_listen = bad;
    TempDir dir;
    o.data_dir = dir.path();
    o.listen = "127.0.0.1:0";
    auto s = server::NnlabServer::Start(o);
    EXPECT_FALSE(s.ok()) << bad;
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
  }
}

}  // namespace
}  // namespace nnlab::testing
