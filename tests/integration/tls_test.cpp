// TLS listeners: served over TLS 1.2 and 1.3 with ALPN, certificates checked at start and
// re-read on HUP without a failed handshake, sessions resumed on any worker and across
// reloads, and clients that stall or vanish in a handshake let go. The clients are Python's
// ssl module (tests/support/tls_client.py) and openssl s_client.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

namespace json = boost::json;

const std::string kTlsClient = std::string(PREFORK_SOURCE_DIR) + "/tests/support/tls_client.py";

// Runs a command to its end (at most `timeout`); its output (stdout and stderr).
std::string run(const std::string& command, std::chrono::milliseconds timeout = 60s,
                int* status = nullptr) {
    ChildProcess process({"/bin/sh", "-c", command});
    int exit_status = process.wait_exit_status(timeout);
    if (status != nullptr) *status = exit_status;
    return process.output();
}

// The JSON object a tls_client.py command printed last.
json::object parse_client_output(const std::string& output) {
    auto start = output.rfind("\n{");
    start = start == std::string::npos ? output.find('{') : start + 1;
    if (start == std::string::npos) {
        ADD_FAILURE() << "no JSON from the TLS client: " << output;
        return {};
    }
    boost::system::error_code ec;
    json::value value = json::parse(output.substr(start), ec);
    if (ec || !value.is_object()) {
        ADD_FAILURE() << "the TLS client's output is not JSON: " << output;
        return {};
    }
    return value.as_object();
}

std::string tls_client(const std::string& args) {
    return "python3 " + kTlsClient + " " + args;
}

json::object run_tls_client(const std::string& args, std::chrono::milliseconds timeout = 60s) {
    return parse_client_output(run(tls_client(args), timeout));
}

// A string field as it is; anything else as JSON.
std::string str(const json::value& value) {
    return value.is_string() ? std::string(value.as_string()) : json::serialize(value);
}

std::uint64_t count(const json::object& result, const char* name) {
    const json::value* value = result.if_contains(name);
    return value == nullptr ? 0 : static_cast<std::uint64_t>(value->to_number<std::int64_t>());
}

// A certificate and its key, made by openssl in a directory of the test's.
struct Certificate {
    std::string cert, key;
};

Certificate make_certificate(const TempDir& dir, const std::string& name,
                             const std::string& kind = "ec") {
    Certificate made{dir.path(name + ".crt"), dir.path(name + ".key")};
    std::string key_options =
        kind == "rsa" ? "-newkey rsa:2048" : "-newkey ec -pkeyopt ec_paramgen_curve:P-256";
    int status = -1;
    std::string output = run("openssl req -x509 " + key_options + " -nodes -keyout " + made.key +
                                 " -out " + made.cert + " -days 365 -subj /CN=localhost " +
                                 "-addext subjectAltName=DNS:localhost,IP:127.0.0.1",
                             30s, &status);
    EXPECT_EQ(status, 0) << output;
    return made;
}

// One that expired in 2020 (openssl ca signs with the dates it is given).
Certificate make_expired_certificate(const TempDir& dir) {
    Certificate made{dir.path("expired.crt"), dir.path("expired.key")};
    dir.write("ca.cnf",
              "[ ca ]\ndefault_ca = self\n[ self ]\ndatabase = " + dir.path("index.txt") +
                  "\nnew_certs_dir = " + dir.path("") + "\nserial = " + dir.path("serial") +
                  "\ndefault_md = sha256\npolicy = any\n[ any ]\ncommonName = supplied\n");
    dir.write("index.txt", "");
    dir.write("serial", "01\n");
    int status = -1;
    std::string output =
        run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " +
                made.key + " -out " + dir.path("expired.csr") + " -subj /CN=expired && " +
                "openssl ca -config " + dir.path("ca.cnf") + " -selfsign -keyfile " + made.key +
                " -in " + dir.path("expired.csr") + " -out " + made.cert +
                " -startdate 20200101000000Z -enddate 20200201000000Z -batch",
            30s, &status);
    EXPECT_EQ(status, 0) << output;
    return made;
}

// The certificate's serial as Python's ssl module prints it (upper-case hexadecimal).
std::string serial_of(const Certificate& certificate) {
    std::string output = run("openssl x509 -noout -serial -in " + certificate.cert);
    auto equals = output.find("serial=");
    if (equals == std::string::npos) return "";
    std::string serial = output.substr(equals + 7);
    serial.erase(serial.find_last_not_of(" \r\n") + 1);
    return serial;
}

// Installs `from` as the files `to` names, each in one step (a new file renamed over the old),
// as a certificate manager does.
void install(const TempDir& dir, const Certificate& from, const Certificate& to) {
    auto read = [](const std::string& path) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    };
    dir.write(std::filesystem::path(to.cert).filename().string(), read(from.cert));
    dir.write(std::filesystem::path(to.key).filename().string(), read(from.key));
}

std::vector<std::string> tls_args(const Certificate& certificate) {
    return {"--bind",         "tls:127.0.0.1:0", "--tls-cert",
            certificate.cert, "--tls-key",       certificate.key};
}

Loopback tls_server(const Certificate& certificate, std::vector<std::string> more = {},
                    int workers = 2) {
    std::vector<std::string> args = tls_args(certificate);
    args.insert(args.end(), more.begin(), more.end());
    return Loopback{workers, args};
}

json::object status_json(const PreforkServer& server) {
    return json::parse(HttpConnection(server.admin_port()).get("/status.json").body()).as_object();
}

std::set<long> worker_pids(const PreforkServer& server, int generation) {
    std::set<long> pids;
    json::object status = status_json(server);
    for (const auto& worker : status.at("workers").as_array()) {
        const auto& row = worker.as_object();
        if (row.at("generation").as_int64() == generation && row.at("state") == "ready") {
            pids.insert(static_cast<long>(row.at("pid").as_int64()));
        }
    }
    return pids;
}

bool reload_completed(const PreforkServer& server, int generation) {
    auto status = status_json(server);
    if (status.at("generation").as_int64() != generation) return false;
    for (const auto& worker : status.at("workers").as_array()) {
        const auto& row = worker.as_object();
        if (row.at("generation").as_int64() != generation || row.at("state") != "ready") {
            return false;
        }
    }
    return !status.at("workers").as_array().empty();
}

// One request on a new connection with openssl s_client, saving or resuming its session:
// whether it was resumed, and the pid of the worker that answered (GET /pid).
struct Resumption {
    bool reused = false;
    long pid = 0;
    std::string output;
};

// With `save_to`, the session it ends with (the ticket it was given) is saved there.
Resumption s_client(std::uint16_t port, const std::string& session_file, bool resume,
                    const std::string& save_to = "", const std::string& options = "") {
    std::string command =
        "printf 'GET /pid HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: "
        "close\\r\\n\\r\\n' | timeout 20 openssl s_client -connect 127.0.0.1:" +
        std::to_string(port) + " -servername localhost -ign_eof " + options + " " +
        (resume ? "-sess_in " : "-sess_out ") + session_file +
        (save_to.empty() ? "" : " -sess_out " + save_to) + " 2>&1";
    Resumption result;
    result.output = run(command, 30s);
    result.reused = result.output.find("\nReused, TLS") != std::string::npos;
    auto head_end = result.output.find("\r\n\r\n");
    if (head_end != std::string::npos) {
        result.pid = std::atol(result.output.c_str() + head_end + 4);
    }
    return result;
}

TEST(Tls, ServesHttp11OverTls12AndTls13WithAlpnBesidePlainHttp) {
    TempDir dir("prefork-tls");
    for (const char* kind : {"ec", "rsa"}) {
        Certificate certificate = make_certificate(dir, kind, kind);
        PreforkServer server(tls_server(certificate));
        std::string port = std::to_string(server.port(1));
        for (const char* version : {"1.2", "1.3"}) {
            auto got = run_tls_client("get " + port + " --version " + version +
                                      " --alpn h2,http/1.1 --ca " + certificate.cert);
            EXPECT_EQ(str(got["version"]), std::string("TLSv") + version) << kind << " " << got;
            EXPECT_EQ(str(got["alpn"]), "http/1.1") << kind << " " << got;
            EXPECT_EQ(got["status"], 200) << got;
            EXPECT_EQ(str(got["body"]), "Hello, World!") << got;
            EXPECT_EQ(str(got["serial"]), serial_of(certificate)) << got;
        }
        // A client that offers no protocol prefork speaks is served without ALPN.
        auto h2_only = run_tls_client("get " + port + " --alpn h2 --ca " + certificate.cert);
        EXPECT_EQ(h2_only["status"], 200) << h2_only;
        EXPECT_TRUE(h2_only["alpn"].is_null()) << h2_only;
        // The plain listener beside it still speaks plain HTTP.
        EXPECT_EQ(http_get(server.port(0), "/").body(), "Hello, World!");
    }
}

TEST(Tls, ABadCertificateOrKeyIsOneLineAndExitStatus2AtStart) {
    TempDir dir("prefork-tls");
    Certificate good = make_certificate(dir, "good");
    Certificate other = make_certificate(dir, "other");
    Certificate expired = make_expired_certificate(dir);
    dir.write("garbage.crt", "not a certificate\n");
    // A chain too large for the one control message that takes it to the workers.
    auto contents = [](const std::string& path) {
        std::ifstream in(path);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    std::string chain = contents(good.cert);
    for (int i = 0; i < 120; ++i) chain += contents(other.cert);
    dir.write("huge-chain.crt", chain);
    struct Case {
        std::vector<std::string> args;
        std::string says;
    };
    std::vector<Case> cases = {
        {{"--tls-cert", good.cert, "--tls-key", other.key}, "is not the key of the certificate"},
        {{"--tls-cert", dir.path("missing.crt"), "--tls-key", good.key},
         "cannot read the TLS certificate"},
        {{"--tls-cert", dir.path("garbage.crt"), "--tls-key", good.key},
         "is not a PEM certificate"},
        {{"--tls-cert", expired.cert, "--tls-key", expired.key}, "expired on 2020-02-01"},
        {{"--tls-cert", good.cert, "--tls-key", good.key, "--tls-ciphers", "NOTACIPHER"},
         "OpenSSL takes none of the TLS ciphers"},
        {{}, "a tls: listener needs a certificate and its key"},
        {{"--tls-cert", dir.path("huge-chain.crt"), "--tls-key", good.key},
         "bytes to send to the workers; at most 65536 fit"},
    };
    for (const Case& c : cases) {
        std::vector<std::string> argv = {prefork_binary(), "--bind", "tls:127.0.0.1:0"};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        argv.insert(argv.end(), {"--", demo_binary()});
        ChildProcess prefork(argv);
        EXPECT_EQ(prefork.wait_exit_status(10s), 2) << prefork.output();
        std::string output = prefork.output();
        EXPECT_NE(output.find(c.says), std::string::npos) << output;
        EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
    }
}

TEST(Tls, ABadCertificateOnReloadKeepsTheRunningOneServing) {
    TempDir dir("prefork-tls");
    Certificate first = make_certificate(dir, "first");
    Certificate second = make_certificate(dir, "second");
    Certificate live{dir.path("live.crt"), dir.path("live.key")};
    install(dir, first, live);
    PreforkServer server(tls_server(live, {"--admin", "127.0.0.1:0"}));
    std::string port = std::to_string(server.port(1));

    // The new certificate with the old key: refused, the running configuration stays.
    dir.write("live.crt", [&] {
        std::ifstream in(second.cert);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }());
    server.signal(SIGHUP);
    auto failed = server.wait_for_lines("reload failed", 1);
    ASSERT_EQ(failed.size(), 1u) << server.output();
    EXPECT_NE(failed[0].find("is not the key of the certificate"), std::string::npos) << failed[0];
    auto got = run_tls_client("get " + port + " --ca " + first.cert);
    EXPECT_EQ(str(got["serial"]), serial_of(first)) << got;
    EXPECT_EQ(status_json(server).at("generation").as_int64(), 1);

    // Both files in place: the next reload serves the new certificate.
    install(dir, second, live);
    server.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return reload_completed(server, 2); }, 20s)) << server.output();
    got = run_tls_client("get " + port + " --ca " + second.cert);
    EXPECT_EQ(str(got["serial"]), serial_of(second)) << got;
    EXPECT_EQ(server.wait_for_lines("certificate serial", 1).size(), 1u) << server.output();
}

TEST(Tls, ANewCertificateOnHupUnderKeepAliveLoadFailsNoRequestAndNoHandshake) {
    TempDir dir("prefork-tls");
    Certificate first = make_certificate(dir, "first");
    Certificate second = make_certificate(dir, "second");
    Certificate live{dir.path("live.crt"), dir.path("live.key")};
    install(dir, first, live);
    PreforkServer server(tls_server(live, {"--admin", "127.0.0.1:0"}));
    std::string port = std::to_string(server.port(1));

    // 16 keep-alive clients, each with a new connection (a full handshake) every 20 requests.
    ChildProcess load({"python3", kTlsClient, "load", port, "--seconds", "8", "--connections", "16",
                       "--new-every", "20", "--ca", first.cert, "--ca", second.cert});
    ASSERT_TRUE(server.wait_for_requests_received(200, 20s)) << load.output();
    install(dir, second, live);
    server.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return reload_completed(server, 2); }, 30s)) << server.output();
    EXPECT_EQ(load.wait_exit_status(60s), 0) << load.output();
    auto result = parse_client_output(load.output());

    EXPECT_EQ(count(result, "failed"), 0u) << result;
    EXPECT_EQ(count(result, "handshake_failures"), 0u) << result;
    EXPECT_GT(count(result, "requests"), 1000u) << result;
    // New connections met the new certificate once the new generation served.
    std::set<std::string> serials;
    for (const auto& serial : result.at("serials").as_array()) {
        serials.insert(std::string(serial.as_string()));
    }
    EXPECT_EQ(serials, (std::set<std::string>{serial_of(first), serial_of(second)})) << result;
    auto got = run_tls_client("get " + port + " --ca " + second.cert);
    EXPECT_EQ(str(got["serial"]), serial_of(second)) << got;
}

TEST(Tls, SessionsResumeOnEveryWorkerAndAcrossAReload) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--admin", "127.0.0.1:0"}));
    std::uint16_t port = server.port(1);
    std::string session = dir.path("session.pem");

    Resumption first = s_client(port, session, false);
    ASSERT_FALSE(first.reused) << first.output;
    ASSERT_GT(first.pid, 0) << first.output;
    // The session resumes on both workers (connections land on either).
    std::set<long> resumed_on;
    std::set<long> workers = worker_pids(server, 1);
    ASSERT_EQ(workers.size(), 2u);
    for (int i = 0; i < 40 && resumed_on.size() < 2; ++i) {
        Resumption again = s_client(port, session, true);
        EXPECT_TRUE(again.reused) << again.output;
        if (again.reused) resumed_on.insert(again.pid);
    }
    EXPECT_EQ(resumed_on, workers);

    // After a reload, the new generation's workers resume it too.
    server.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return reload_completed(server, 2); }, 30s)) << server.output();
    std::set<long> new_workers = worker_pids(server, 2);
    Resumption after = s_client(port, session, true);
    EXPECT_TRUE(after.reused) << after.output;
    EXPECT_EQ(new_workers.count(after.pid), 1u) << after.output;
    EXPECT_TRUE(eventually(
        [&] {
            auto totals = status_json(server).at("totals").as_object();
            return totals.at("tls_sessions_resumed").to_number<std::int64_t>() >= 3;
        },
        5s));
}

// A TLS 1.3 client uses each ticket once (RFC 8446 C.4, as browsers and wrk do): every
// resumed connection gets a new ticket, so a chain of such clients resumes every time, on
// whichever worker it lands.
TEST(Tls, AClientThatUsesEachTicketOnceResumesEveryConnection) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--admin", "127.0.0.1:0"}));
    std::uint16_t port = server.port(1);
    std::string session = dir.path("session-0.pem");
    ASSERT_FALSE(s_client(port, session, false, "", "-tls1_3").reused);
    std::set<long> workers = worker_pids(server, 1);
    std::set<long> resumed_on;
    for (int i = 1; i <= 12; ++i) {
        std::string next = dir.path("session-" + std::to_string(i) + ".pem");
        Resumption again = s_client(port, session, true, next, "-tls1_3");
        ASSERT_TRUE(again.reused) << "connection " << i << ":\n" << again.output;
        ASSERT_TRUE(std::filesystem::exists(next)) << again.output;
        resumed_on.insert(again.pid);
        session = next;
    }
    EXPECT_EQ(resumed_on, workers);
}

// The ticket keys cross an upgrade in place (in the state's memfd): the new image's workers
// resume a session the old image's workers began.
TEST(Tls, SessionsResumeAcrossAnUpgradeInPlace) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    std::string installed = dir.path("prefork");
    std::filesystem::copy_file(prefork_binary(), installed);
    Loopback options = tls_server(certificate, {"--admin", "127.0.0.1:0"});
    options.binary = installed;
    PreforkServer server(options);
    std::uint16_t port = server.port(1);
    std::string session = dir.path("session.pem");
    ASSERT_FALSE(s_client(port, session, false).reused);

    std::filesystem::copy_file(prefork_next_binary(), installed + ".new");
    std::filesystem::rename(installed + ".new", installed);
    server.signal(SIGUSR2);
    ASSERT_TRUE(eventually(
        [&] {
            try {
                auto status = status_json(server);
                return std::string(status.at("version").as_string()).ends_with("-next") &&
                       reload_completed(server, 2);
            } catch (const std::exception&) {
                return false;  // the admin endpoint during the exec
            }
        },
        30s))
        << server.output();
    std::set<long> new_workers = worker_pids(server, 2);
    Resumption after = s_client(port, session, true);
    EXPECT_TRUE(after.reused) << after.output;
    EXPECT_EQ(new_workers.count(after.pid), 1u) << after.output;
    auto got = run_tls_client("get " + std::to_string(port) + " --ca " + certificate.cert);
    EXPECT_EQ(got["status"], 200) << got;
}

TEST(Tls, TicketKeysRotateAndTheOneBeforeStillResumes) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(
        tls_server(certificate, {"--tls-ticket-rotation", "3", "--log-level", "debug"}));
    std::uint16_t port = server.port(1);
    std::string session = dir.path("session.pem");
    ASSERT_FALSE(s_client(port, session, false).reused);
    // After one rotation the ticket's key is the one before: it still resumes.
    ASSERT_EQ(server.wait_for_lines("session-ticket key rotated", 1, 10s).size(), 1u);
    Resumption after_one = s_client(port, session, true);
    EXPECT_TRUE(after_one.reused) << after_one.output;
    // After two, its key is gone: a full handshake, which succeeds.
    ASSERT_EQ(server.wait_for_lines("session-ticket key rotated", 2, 10s).size(), 2u);
    Resumption after_two = s_client(port, session, true);
    EXPECT_FALSE(after_two.reused) << after_two.output;
    EXPECT_GT(after_two.pid, 0) << after_two.output;
}

// A blocked worker (a handler in nanosleep, not killed) does not serve its slot's queue: the
// master passes the TLS clients that queued there to the other worker, which serves them
// over TLS, as it would have had it accepted them. The listener is a wildcard one (the
// usual production bind), whose clients' local address is not the listener's.
TEST(Tls, NewTlsClientsQueuedForABlockedWorkerAreServedOverTlsByTheOther) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(
        Loopback{2,
                 {"--bind", "tls:0.0.0.0:0", "--tls-cert", certificate.cert, "--tls-key",
                  certificate.key, "--admin", "127.0.0.1:0", "--timeout", "30"}});
    auto workers = server.children();
    ASSERT_EQ(workers.size(), 2u);
    HttpConnection blocker(server.port(0), 30s);
    blocker.send_raw("GET /block?ms=15000 HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(eventually(
        [&] {
            for (pid_t pid : workers) {
                if (threads_in_nanosleep(pid) > 0) return true;
            }
            return false;
        },
        5s));

    std::string get = "get " + std::to_string(server.port(1)) + " --ca " + certificate.cert;
    std::vector<std::future<json::object>> answers;
    for (int i = 0; i < 16; ++i) {
        answers.push_back(std::async(std::launch::async, [&] { return run_tls_client(get, 14s); }));
    }
    for (auto& answer : answers) {
        json::object got = answer.get();
        EXPECT_EQ(got["status"], 200) << got;
        EXPECT_EQ(str(got["body"]), "Hello, World!") << got;
    }
    auto rescued = [&] {
        auto status = status_json(server);
        return status.at("connections_rescued").to_number<std::uint64_t>();
    };
    EXPECT_TRUE(eventually([&] { return rescued() > 0; }, 3s))
        << "about half of the clients queued for the blocked worker; the master passed them on";
    EXPECT_EQ(server.children(), workers) << "the blocked worker was not killed";
    EXPECT_EQ(blocker.read_response().result_int(), 200);
}

// A raw TCP client on 127.0.0.1:port; -1 when it cannot connect.
int connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

// Reads until the server closes the connection; how long that took, or nullopt after 10 s.
std::optional<std::chrono::milliseconds> time_until_closed(int fd) {
    auto start = std::chrono::steady_clock::now();
    char buffer[4096];
    for (;;) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) break;
        if (n < 0) return std::nullopt;  // the receive timeout
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
}

TEST(Tls, TheHandshakeTimeoutLetsSilentAndHalfHelloClientsGo) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(
        certificate, {"--admin", "127.0.0.1:0", "--env", "PREFORK_TLS_HANDSHAKE_TIMEOUT=1"}));
    std::uint16_t port = server.port(1);

    int silent = connect_to(port);
    int half = connect_to(port);
    ASSERT_GE(silent, 0);
    ASSERT_GE(half, 0);
    // The first bytes of a ClientHello: a record header and the start of the message.
    const unsigned char hello_start[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
    ASSERT_EQ(::send(half, hello_start, sizeof hello_start, MSG_NOSIGNAL),
              static_cast<ssize_t>(sizeof hello_start));
    // Meanwhile a real client is served.
    auto got = run_tls_client("get " + std::to_string(port) + " --ca " + certificate.cert);
    EXPECT_EQ(got["status"], 200) << got;
    auto silent_closed = time_until_closed(silent);
    auto half_closed = time_until_closed(half);
    ::close(silent);
    ::close(half);
    ASSERT_TRUE(silent_closed.has_value()) << "a client that sent nothing is still connected";
    ASSERT_TRUE(half_closed.has_value()) << "a client that sent half a hello is still connected";
    EXPECT_LT(*silent_closed, 5s);
    EXPECT_LT(*half_closed, 5s);
    EXPECT_TRUE(eventually(
        [&] {
            auto totals = status_json(server).at("totals").as_object();
            return totals.at("tls_handshake_failures").to_number<std::int64_t>() >= 2 &&
                   totals.at("active_connections").to_number<std::int64_t>() == 0;
        },
        5s));
}

TEST(Tls, ClientsHangingUpMidHandshakeAndMidDownloadCostNothing) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--admin", "127.0.0.1:0"}));
    std::uint16_t port = server.port(1);
    std::set<long> workers = worker_pids(server, 1);

    auto done = run_tls_client("hangups " + std::to_string(port) + " --count 30", 120s);
    EXPECT_EQ(count(done, "mid_handshake"), 30u) << done;
    EXPECT_EQ(count(done, "mid_download"), 30u) << done;

    // The same workers serve on, and hold no connection of the clients that left.
    auto got = run_tls_client("get " + std::to_string(port) + " --ca " + certificate.cert);
    EXPECT_EQ(got["status"], 200) << got;
    EXPECT_EQ(worker_pids(server, 1), workers) << server.output();
    EXPECT_TRUE(eventually(
        [&] {
            return status_json(server)
                       .at("totals")
                       .as_object()
                       .at("active_connections")
                       .to_number<std::int64_t>() == 0;
        },
        10s));
}

// What tls_client.py raw saw: the statuses, whether the server closed, after how long.
// `split`: each request (up to its blank line) in a TLS record of its own.
json::object send_raw(std::uint16_t port, const std::string& data, int pad = 0,
                      bool split = false) {
    return run_tls_client("raw " + std::to_string(port) + " --data '" + data + "'" +
                          (pad > 0 ? " --pad " + std::to_string(pad) : "") +
                          (split ? " --split" : ""));
}

std::vector<std::int64_t> statuses(const json::object& result) {
    std::vector<std::int64_t> out;
    if (const json::value* list = result.if_contains("statuses")) {
        for (const auto& status : list->as_array()) out.push_back(status.as_int64());
    }
    return out;
}

TEST(Tls, EveryHttpLimitHoldsBehindTls) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(
        tls_server(certificate,
                   {"--env", "PREFORK_HEADER_TIMEOUT=1", "--env", "PREFORK_BODY_LIMIT=65536"}, 1));
    std::uint16_t port = server.port(1);
    const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    auto big_head = send_raw(port, get, 20000);
    EXPECT_EQ(statuses(big_head), std::vector<std::int64_t>{431}) << big_head;
    auto big_body =
        send_raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    EXPECT_EQ(statuses(big_body), std::vector<std::int64_t>{413}) << big_body;
    // A chunk-size line without end.
    auto endless_chunk_size =
        send_raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           std::string(9000, '1'));
    EXPECT_EQ(statuses(endless_chunk_size), std::vector<std::int64_t>{400}) << endless_chunk_size;
    // Half a head, then nothing: 408 after the header timeout.
    auto slow_head = send_raw(port, "GET / HTTP/1.1\r\nHost:");
    EXPECT_EQ(statuses(slow_head), std::vector<std::int64_t>{408}) << slow_head;
    EXPECT_TRUE(slow_head["closed"].as_bool()) << slow_head;
    EXPECT_LT(slow_head["seconds"].to_number<double>(), 5) << slow_head;
    // Pipelined requests, answered in order; the last asks for the end.
    auto pipelined =
        send_raw(port, get + get + "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(statuses(pipelined), (std::vector<std::int64_t>{200, 200, 404})) << pipelined;
    EXPECT_TRUE(pipelined["closed"].as_bool()) << pipelined;
}

// A keep-alive TLS client whose last request and FIN (no close_notify) arrive together, in
// one report from epoll, after requests whose waits cost no system call: it is answered and
// closed at once, not after the idle timeout.
TEST(Tls, AKeepAliveClientThatHalfClosesAfterItsLastRequestIsClosedAtOnce) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--env", "PREFORK_IDLE_TIMEOUT=60"}, 1));
    std::uint16_t port = server.port(1);
    for (int earlier = 2; earlier <= 4; ++earlier) {
        auto result = run_tls_client("half-close " + std::to_string(port) + " --earlier " +
                                     std::to_string(earlier));
        EXPECT_EQ(statuses(result), (std::vector<std::int64_t>{200, 200})) << result;
        EXPECT_TRUE(result["closed"].as_bool()) << result;
        EXPECT_LT(result["seconds"].to_number<double>(), 10) << "the idle timeout: " << result;
    }
}

// Pipelined requests each in a record of its own arrive together: OpenSSL reads them ahead
// in one read, and those it holds (not in the socket any more) are served without a wait
// for input that will not come.
TEST(Tls, PipelinedRequestsInRecordsOfTheirOwnAreAllAnsweredInOrder) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {}, 1));
    std::string requests;
    for (int i = 0; i < 40; ++i) requests += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    requests += "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    auto result = send_raw(server.port(1), requests, 0, true);
    std::vector<std::int64_t> expected(40, 200);
    expected.push_back(404);
    EXPECT_EQ(statuses(result), expected) << result;
    EXPECT_TRUE(result["closed"].as_bool()) << result;
    EXPECT_LT(result["seconds"].to_number<double>(), 5) << result;
}

// At PREFORK_MAX_CONNECTIONS, a new TLS client is admitted by closing the keep-alive
// connection idle the longest, as for plain HTTP.
TEST(Tls, TheConnectionLimitClosesTheLongestIdleToAdmitANewClient) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--env", "PREFORK_MAX_CONNECTIONS=3"}, 1));
    auto result = run_tls_client("idle-limit " + std::to_string(server.port(1)) + " --idle 3");
    EXPECT_EQ(result["status"], 200) << result;
    ASSERT_TRUE(result["closed"].is_array()) << result;
    std::vector<bool> closed;
    for (const auto& each : result["closed"].as_array()) closed.push_back(each.as_bool());
    EXPECT_EQ(closed, (std::vector<bool>{true, false, false})) << result;
}

// Issue 12's client over TLS: keep-alive connections that send a request now and then,
// while prefork reloads. A TLS session cannot move to another worker (no kTLS here), so a
// draining worker keeps each connection until its next request and answers it with
// Connection: close: the client connects again, and no request fails.
TEST(Tls, SporadicKeepAliveClientsSeeNoFailedRequestAcrossReloads) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--admin", "127.0.0.1:0"}));
    std::string port = std::to_string(server.port(1));
    ChildProcess clients({"python3", kTlsClient, "sporadic", port, "--seconds", "12", "--clients",
                          "40", "--min-pause", "200", "--max-pause", "1500", "--ca",
                          certificate.cert});
    std::this_thread::sleep_for(1s);  // their connections open and go idle
    for (int i = 0; i < 8; ++i) {
        server.signal(SIGHUP);
        std::this_thread::sleep_for(1s);
    }
    EXPECT_EQ(clients.wait_exit_status(60s), 0) << clients.output();
    auto result = parse_client_output(clients.output());
    EXPECT_EQ(count(result, "failed"), 0u) << result;
    EXPECT_EQ(count(result, "handshake_failures"), 0u) << result;
    EXPECT_GT(count(result, "requests"), 150u) << result;
    // Connections were ended after a response, never under a request.
    EXPECT_GT(count(result, "closed_after_response"), 0u) << result;
}

TEST(Tls, NoKeyMaterialReachesAProcessAHandlerStarts) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--admin", "127.0.0.1:0"}));
    std::string port = std::to_string(server.port(1));

    // A child started by a handler, over TLS: 0, 1 and 2 only.
    auto got = run_tls_client("get " + port + " --target /child-fds --ca " + certificate.cert);
    ASSERT_EQ(got["status"], 200) << got;
    std::string listing(got["body"].as_string());
    EXPECT_EQ(listed_descriptors(listing), (std::set<int>{0, 1, 2})) << listing;

    // A child forked without exec, from a handler serving TLS, holds no socket at all.
    auto forked = run_tls_client("get " + port + " --target /fork?seconds=30");
    ASSERT_EQ(forked["status"], 200) << forked;
    pid_t child = std::stoi(str(forked["body"]));
    ASSERT_TRUE(wait_until_sleeping(child, 10s));
    for (const OpenDescriptor& open : open_descriptors(child)) {
        EXPECT_FALSE(open.target.starts_with("socket:")) << "fd " << open.fd << " " << open.target;
    }
    ::kill(child, SIGKILL);

    // No process of prefork's holds the key file open or has the key in its environment.
    std::vector<pid_t> processes = server.children();
    processes.push_back(server.pid());
    std::string key_text = read_text_file(certificate.key);
    for (pid_t pid : processes) {
        for (const OpenDescriptor& open : open_descriptors(pid)) {
            EXPECT_NE(open.target, certificate.key) << "pid " << pid;
            EXPECT_NE(open.target, certificate.cert) << "pid " << pid;
        }
        std::string environment = read_text_file("/proc/" + std::to_string(pid) + "/environ");
        EXPECT_EQ(environment.find("PRIVATE KEY"), std::string::npos) << "pid " << pid;
    }
    EXPECT_NE(key_text.find("PRIVATE KEY"), std::string::npos);
}

TEST(Tls, StatusAndMetricsShowEachListenersCertificateAndItsExpiry) {
    TempDir dir("prefork-tls");
    Certificate certificate = make_certificate(dir, "server");
    PreforkServer server(tls_server(certificate, {"--admin", "127.0.0.1:0"}));
    std::string name = "tls:127.0.0.1:0";
    auto status = status_json(server);
    const auto& tls = status.at("tls").as_array();
    ASSERT_EQ(tls.size(), 1u) << status;
    const auto& listener = tls[0].as_object();
    EXPECT_EQ(str(listener.at("listener")), name);
    EXPECT_EQ(str(listener.at("subject")), "CN=localhost");
    EXPECT_EQ(str(listener.at("serial")), serial_of(certificate));
    double left = listener.at("expires_in_seconds").to_number<double>();
    EXPECT_GT(left, 364 * 86400.0);
    EXPECT_LE(left, 365 * 86400.0);

    std::string metrics = HttpConnection(server.admin_port()).get("/metrics").body();
    std::string sample = "prefork_tls_certificate_expiry_seconds{listener=\"" + name +
                         "\",subject=\"CN=localhost\",serial=\"" + serial_of(certificate) + "\"} ";
    auto at = metrics.find(sample);
    ASSERT_NE(at, std::string::npos) << metrics;
    double metric = std::stod(metrics.substr(at + sample.size()));
    EXPECT_NEAR(metric, left, 60);
    std::string page = HttpConnection(server.admin_port()).get("/status").body();
    EXPECT_NE(page.find("CN=localhost"), std::string::npos);
    EXPECT_NE(page.find("expires in"), std::string::npos);
}

}  // namespace
}  // namespace prefork::testing
