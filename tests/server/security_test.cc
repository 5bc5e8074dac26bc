// Security of nnlabd: the bearer token guards every RPC of every nnlab
// service (enumerated from the service descriptors, so a new RPC cannot be
// forgotten) while the health service stays open; server reflection is
// never served next to a token; TLS and mutual TLS refuse clients without
// the right certificates. Certificates are made with openssl at run time.
#include <dirent.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "server/services.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

using ::grpc::StatusCode;

const char kToken[] = "s3cret-token-42";

// grpc.health.v1.Health/Check of `service` ("" = the server): the response
// is HealthCheckResponse{status = 1 SERVING} = bytes 08 01.
RawResult Health(grpc::Channel* ch, const std::string& service) {
  std::string req;
  if (!service.empty()) {
    req.push_back(0x0a);  // HealthCheckRequest.service, length-delimited.
    req.push_back(static_cast<char>(service.size()));
    req += service;
  }
  return RawCall(ch, "/grpc.health.v1.Health/Check", req, {});
}

// grpc.reflection.v1alpha ServerReflectionRequest{list_services: "*"}.
RawResult ListServices(grpc::Channel* ch, const Metadata& md) {
  return RawCall(
      ch, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      std::string("\x3a\x01*", 3), md);
}

std::vector<std::string> ProtoFiles() {
  std::vector<std::string> files;
  const std::string dir = std::string(NNLAB_SOURCE_DIR) + "/proto/nnlab/v1";
  DIR* d = opendir(dir.c_str());
  EXPECT_NE(d, nullptr) << dir;
  if (d == nullptr) return files;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 6 && name.substr(name.size() - 6) == ".proto") {
      files.push_back("nnlab/v1/" + name);
    }
  }
  closedir(d);
  return files;
}

struct Method {
  std::string path;  // "/nnlab.v1.ModelService/CreateModel"
  bool client_streaming, server_streaming;
};

// Every method of every service in every nnlab/v1 proto file, from the
// descriptors compiled into the binary; checked against the "rpc" lines of
// the .proto sources so the list cannot silently shrink.
std::vector<Method> AllMethods() {
  std::vector<Method> methods;
  int rpc_lines = 0;
  for (const std::string& file : ProtoFiles()) {
    std::istringstream src(
        ReadText(std::string(NNLAB_SOURCE_DIR) + "/proto/" + file));
    for (std::string line; std::getline(src, line);) {
      const size_t first = line.find_first_not_of(' ');
      if (first != std::string::npos && line.compare(first, 4, "rpc ") == 0) {
        ++rpc_lines;
      }
    }
    const google::protobuf::FileDescriptor* fd =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
            file);
    EXPECT_NE(fd, nullptr) << file << " is not compiled into the server";
    if (fd == nullptr) continue;
    for (int s = 0; s < fd->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* sd = fd->service(s);
      for (int m = 0; m < sd->method_count(); ++m) {
        methods.push_back(
            {absl::StrCat("/", sd->full_name(), "/", sd->method(m)->name()),
             sd->method(m)->client_streaming(),
             sd->method(m)->server_streaming()});
      }
    }
  }
  EXPECT_EQ(static_cast<int>(methods.size()), rpc_lines);
  return methods;
}

TEST(SecurityTest, ConstantTimeEqualsComparesWholeStrings) {
  using server::ConstantTimeEquals;
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("Bearer abc", "Bearer abc"));
  EXPECT_FALSE(ConstantTimeEquals("Bearer abc", "Bearer abd"));
  EXPECT_FALSE(ConstantTimeEquals("Bearer abc", "Xearer abc"));
  EXPECT_FALSE(ConstantTimeEquals("Bearer ab", "Bearer abc"));    // Prefix.
  EXPECT_FALSE(ConstantTimeEquals("Bearer abcd", "Bearer abc"));  // Longer.
  EXPECT_FALSE(ConstantTimeEquals("", "Bearer abc"));
  // A trailing NUL is not the end of the string.
  EXPECT_FALSE(ConstantTimeEquals(absl::string_view("abc\0", 4), "abc"));
}

TEST(SecurityTest, EveryRpcNeedsTheTokenButHealthDoesNot) {
  server::ServerOptions o;
  o.token = kToken;
  TestServer server(o);
  auto ch = server.Channel();
  const std::vector<Method> methods = AllMethods();
  ASSERT_GE(methods.size(), 20u);
  const std::string right = absl::StrCat("Bearer ", kToken);
  const std::vector<std::pair<std::string, Metadata>> wrong = {
      {"no token", {}},
      {"empty authorization", {{"authorization", ""}}},
      {"scheme only", {{"authorization", "Bearer "}}},
      {"wrong token", {{"authorization", "Bearer wrong"}}},
      {"a prefix of the token",
       {{"authorization", right.substr(0, right.size() - 1)}}},
      {"the token plus one character", {{"authorization", right + "x"}}},
      {"the token plus a space", {{"authorization", right + " "}}},
      {"the token without the scheme", {{"authorization", kToken}}},
      {"the token in another header", {{"x-token", right}}},
      {"the right token and a wrong one",
       {{"authorization", right}, {"authorization", "Bearer wrong"}}},
      {"a wrong token and the right one",
       {{"authorization", "Bearer wrong"}, {"authorization", right}}},
  };
  int calls = 0;
  for (const Method& m : methods) {
    // The default (empty) request: invalid for most RPCs, which is fine;
    // what matters is that no handler runs without the token.
    for (const auto& [what, md] : wrong) {
      RawResult r = RawCall(ch.get(), m.path, "", md);
      ++calls;
      EXPECT_EQ(r.status.error_code(), StatusCode::UNAUTHENTICATED)
          << m.path << " with " << what << ": " << r.status.error_message();
      EXPECT_TRUE(r.responses.empty()) << m.path << " with " << what;
      EXPECT_EQ(r.status.error_message().find(kToken), std::string::npos)
          << "the error message leaks the token";
    }
    RawResult ok = RawCall(ch.get(), m.path, "", {{"authorization", right}});
    EXPECT_NE(ok.status.error_code(), StatusCode::UNAUTHENTICATED)
        << m.path << ": " << ok.status.error_message();
    EXPECT_NE(ok.status.error_code(), StatusCode::UNIMPLEMENTED) << m.path;
  }
  std::printf("token check: %zu RPCs x %zu wrong credentials = %d calls\n",
              methods.size(), wrong.size(), calls);
  // Health answers without a token, for the server and for each service.
  for (const std::string service :
       {"", "nnlab.v1.ModelService", "nnlab.v1.TrainingService",
        "nnlab.v1.InferenceService", "nnlab.v1.DatasetService"}) {
    RawResult h = Health(ch.get(), service);
    EXPECT_TRUE(h.status.ok()) << service << ": " << h.status.error_message();
    EXPECT_EQ(h.responses, std::string("\x08\x01", 2)) << service;
  }
  // Reflection is not served next to a token (nothing to list, with or
  // without the token).
  EXPECT_EQ(ListServices(ch.get(), {}).status.error_code(),
            StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(
      ListServices(ch.get(), {{"authorization", right}}).status.error_code(),
      StatusCode::UNIMPLEMENTED);
}

TEST(SecurityTest, ReflectionOnlyWhereEnabledAndNeverWithAToken) {
  {
    server::ServerOptions o;
    o.reflection = true;
    TestServer server(o);
    RawResult r = ListServices(server.Channel().get(), {});
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    for (const char* s : {"nnlab.v1.ModelService", "nnlab.v1.TrainingService",
                          "nnlab.v1.InferenceService"}) {
      EXPECT_NE(r.responses.find(s), std::string::npos) << s;
    }
  }
  // gRPC registers reflection process-wide; a server built afterwards
  // without it must not serve it.
  {
    TestServer server;
    EXPECT_EQ(ListServices(server.Channel().get(), {}).status.error_code(),
              StatusCode::UNIMPLEMENTED);
  }
  server::ServerOptions o;
  o.reflection = true;
  o.token = kToken;
  o.listen = "127.0.0.1:0";
  TempDir dir;
  o.data_dir = dir.path();
  auto s = server::NnlabServer::Start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("reflection"), absl::string_view::npos);
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string d = dir_->path();
    MakeCa(d, "ca");
    MakeCa(d, "other-ca");
    MakeCert(d, "ca", "server");
    MakeCert(d, "ca", "client");
    MakeCert(d, "other-ca", "stranger");  // Valid, but from another CA.
    MakeCert(d, "other-ca", "impostor");  // A server the client must reject.
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string File(const std::string& name) {
    return ReadText(dir_->path() + "/" + name);
  }
  // Credentials trusting `root` with an optional client certificate.
  static std::shared_ptr<grpc::ChannelCredentials> Creds(
      const std::string& root, const std::string& cert = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = File(root + ".pem");
    if (!cert.empty()) {
      ssl.pem_cert_chain = File(cert + ".pem");
      ssl.pem_private_key = File(cert + ".key");
    }
    return grpc::SslCredentials(ssl);
  }
  // ListModels over a fresh channel.
  static StatusCode Call(const std::string& addr,
                         std::shared_ptr<grpc::ChannelCredentials> creds,
                         const std::string& token = "") {
    Client c(grpc::CreateChannel(addr, creds));
    v1::ListModelsRequest req;
    v1::ListModelsResponse resp;
    auto ctx = Ctx(5, token);
    return c.models->ListModels(ctx.get(), req, &resp).error_code();
  }
  static TempDir* dir_;
};
TempDir* TlsTest::dir_ = nullptr;

// service_test covers TLS and mTLS with the right certificates; these are
// the refusals.
TEST_F(TlsTest, MutualTlsRefusesClientsWithoutACertificateFromItsCa) {
  server::ServerOptions o;
  o.tls_cert_pem = File("server.pem");
  o.tls_key_pem = File("server.key");
  o.tls_client_ca_pem = File("ca.pem");
  TestServer server(o);
  const std::string addr = server.address();
  EXPECT_EQ(Call(addr, Creds("ca", "client")), StatusCode::OK);
  EXPECT_EQ(Call(addr, Creds("ca")), StatusCode::UNAVAILABLE);  // No cert.
  EXPECT_EQ(Call(addr, Creds("ca", "stranger")), StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(addr, grpc::InsecureChannelCredentials()),
            StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ClientsRefuseAServerTheirCaDidNotSign) {
  server::ServerOptions o;
  o.tls_cert_pem = File("impostor.pem");
  o.tls_key_pem = File("impostor.key");
  TestServer server(o);
  EXPECT_EQ(Call(server.address(), Creds("ca")), StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(server.address(), Creds("other-ca")), StatusCode::OK);
}

TEST_F(TlsTest, TokenStillRequiredOverMutualTls) {
  server::ServerOptions o;
  o.tls_cert_pem = File("server.pem");
  o.tls_key_pem = File("server.key");
  o.tls_client_ca_pem = File("ca.pem");
  o.token = kToken;
  TestServer server(o);
  const std::string addr = server.address();
  EXPECT_EQ(Call(addr, Creds("ca", "client")), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(addr, Creds("ca", "client"), "wrong"),
            StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(addr, Creds("ca", "client"), kToken), StatusCode::OK);
}

TEST_F(TlsTest, InconsistentTlsOptionsAreRefusedAtStart) {
  TempDir data;
  auto start = [&](const std::string& cert, const std::string& key,
                   const std::string& client_ca) {
    server::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.data_dir = data.path();
    o.tls_cert_pem = cert;
    o.tls_key_pem = key;
    o.tls_client_ca_pem = client_ca;
    return server::NnlabServer::Start(o).status();
  };
  EXPECT_EQ(start(File("server.pem"), "", "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start("", File("server.key"), "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start("", "", File("ca.pem")).code(),
            absl::StatusCode::kInvalidArgument);
  // A key that does not belong to the certificate.
  EXPECT_FALSE(start(File("server.pem"), File("client.key"), "").ok());
}

}  // namespace
}  // namespace nnlab::testing
