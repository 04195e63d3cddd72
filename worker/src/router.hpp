#pragma once

#include <prefork/app.hpp>

#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace prefork {

// Maps a method and a path to a handler. Patterns are matched segment by segment; a
// {name} segment matches any one segment and is handed to the handler as a parameter.
class Router {
  public:
    using RouteHandler =
        std::variant<Handler, AsyncHandler, CoroutineHandler, RespondingCoroutineHandler>;

    // Throws std::invalid_argument for a pattern that does not start with '/' or has an
    // unbalanced or empty {}.
    void add(http::verb method, std::string_view pattern, RouteHandler handler);

    struct Match {
        const RouteHandler* handler = nullptr;  // null: see status
        int status = 200;                       // 404 (no such path) or 405 (not this method)
        std::string allow;                      // with 405: the methods the path has
    };

    // Finds the route for `request` and stores its parameters in it.
    Match match(Request& request) const;

  private:
    struct Segment {
        std::string text;  // the literal, or the parameter's name
        bool is_param = false;
    };
    struct Route {
        http::verb method;
        std::vector<Segment> segments;
        RouteHandler handler;
    };

    static bool matches(const Route& route, std::span<const std::string_view> segments,
                        std::vector<std::pair<std::string, std::string>>* params);
    Match match_segments(Request& request, std::span<const std::string_view> segments) const;

    std::vector<Route> routes_;
};

}  // namespace prefork
