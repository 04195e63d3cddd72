#include "router.hpp"

#include <gtest/gtest.h>

namespace prefork {
namespace {

Request make_request(http::verb method, std::string target) {
    Request::Message message{method, target, 11};
    return Request(std::move(message));
}

Response call(const Router::Match& match, const Request& request) {
    Request copy = request;
    return std::get<Handler>(*match.handler)(std::move(copy));
}

TEST(Router, MatchesLiteralPaths) {
    Router router;
    router.add(http::verb::get, "/", [](const Request&) { return Response::text("root"); });
    router.add(http::verb::get, "/a/b", [](const Request&) { return Response::text("ab"); });
    auto request = make_request(http::verb::get, "/a/b?x=1");
    auto match = router.match(request);
    ASSERT_NE(match.handler, nullptr);
    EXPECT_EQ(call(match, request).body(), "ab");
    auto root = make_request(http::verb::get, "/");
    EXPECT_EQ(call(router.match(root), root).body(), "root");
}

TEST(Router, NamedSegmentsBecomeParameters) {
    Router router;
    router.add(http::verb::get, "/users/{id}/posts/{post}", [](const Request& r) {
        return Response::text(std::string(r.param("id")) + "," + std::string(r.param("post")));
    });
    auto request = make_request(http::verb::get, "/users/7/posts/hello%20world");
    auto match = router.match(request);
    ASSERT_NE(match.handler, nullptr);
    EXPECT_EQ(call(match, request).body(), "7,hello world");
    EXPECT_EQ(request.param("missing"), "");
}

TEST(Router, ParameterMatchesExactlyOneNonEmptySegment) {
    Router router;
    router.add(http::verb::get, "/users/{id}", [](const Request&) { return Response(); });
    for (const char* target : {"/users/", "/users", "/users/1/2"}) {
        auto request = make_request(http::verb::get, target);
        EXPECT_EQ(router.match(request).status, 404) << target;
    }
}

TEST(Router, UnknownPathIs404AndWrongMethodIs405WithAllow) {
    Router router;
    router.add(http::verb::get, "/thing", [](const Request&) { return Response(); });
    router.add(http::verb::post, "/thing", [](const Request&) { return Response(); });
    auto missing = make_request(http::verb::get, "/other");
    EXPECT_EQ(router.match(missing).status, 404);
    auto wrong = make_request(http::verb::delete_, "/thing");
    auto match = router.match(wrong);
    EXPECT_EQ(match.handler, nullptr);
    EXPECT_EQ(match.status, 405);
    EXPECT_EQ(match.allow, "GET, HEAD, POST");
}

TEST(Router, HeadFallsBackToGet) {
    Router router;
    router.add(http::verb::get, "/", [](const Request&) { return Response::text("body"); });
    auto request = make_request(http::verb::head, "/");
    EXPECT_NE(router.match(request).handler, nullptr);
}

TEST(Router, MalformedPatternsAreRefused) {
    Router router;
    for (const char* bad : {"", "users", "/users/{id", "/users/id}", "/users/{}", "/a{b}"}) {
        EXPECT_THROW(router.add(http::verb::get, bad, [](const Request&) { return Response(); }),
                     std::invalid_argument)
            << bad;
    }
}

TEST(Request, QueryParametersArePercentDecoded) {
    auto request = make_request(http::verb::get, "/p?a=1&name=hello+big%21&flag&a=2");
    EXPECT_EQ(request.path(), "/p");
    EXPECT_EQ(request.query("a"), "1");
    EXPECT_EQ(request.query("name"), "hello big!");
    EXPECT_EQ(request.query("flag"), "");
    EXPECT_EQ(request.query("none"), std::nullopt);
    EXPECT_EQ(make_request(http::verb::get, "/p?x=%zz").query("x"), std::nullopt);
}

}  // namespace
}  // namespace prefork
