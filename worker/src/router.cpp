#include "router.hpp"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace prefork {
namespace {

// A path's segments, without allocating for paths of up to 8 segments.
using Segments = boost::container::small_vector<std::string_view, 8>;

Segments split_path(std::string_view path) {
    Segments segments;
    std::size_t start = 1;  // after the leading '/'
    while (start <= path.size()) {
        std::size_t slash = path.find('/', start);
        if (slash == std::string_view::npos) slash = path.size();
        segments.push_back(path.substr(start, slash - start));
        start = slash + 1;
    }
    return segments;
}

}  // namespace

void Router::add(http::verb method, std::string_view pattern, RouteHandler handler) {
    if (pattern.empty() || pattern.front() != '/') {
        throw std::invalid_argument("route pattern \"" + std::string(pattern) +
                                    "\" does not start with '/'");
    }
    Route route{method, {}, std::move(handler)};
    for (std::string_view raw : split_path(pattern)) {
        bool opens = raw.starts_with('{'), closes = raw.ends_with('}');
        if (opens != closes || (opens && raw.size() < 3) ||
            (!opens && raw.find_first_of("{}") != std::string_view::npos)) {
            throw std::invalid_argument("route pattern \"" + std::string(pattern) +
                                        "\" has a malformed {name} segment");
        }
        if (opens) {
            route.segments.push_back({std::string(raw.substr(1, raw.size() - 2)), true});
        } else {
            route.segments.push_back({std::string(raw), false});
        }
    }
    routes_.push_back(std::move(route));
}

bool Router::matches(const Route& route, std::span<const std::string_view> segments,
                     std::vector<std::pair<std::string, std::string>>* params) {
    if (route.segments.size() != segments.size()) return false;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const Segment& segment = route.segments[i];
        if (segment.is_param) {
            if (segments[i].empty()) return false;
            if (params) params->emplace_back(segment.text, std::string(segments[i]));
        } else if (segment.text != segments[i]) {
            return false;
        }
    }
    return true;
}

// Paths without percent-escapes (nearly all) are matched in place; the others are decoded
// segment by segment first.
Router::Match Router::match(Request& request) const {
    std::string_view path = request.path();
    if (path.empty() || path.front() != '/') return {nullptr, 404, {}};
    if (path.find('%') == std::string_view::npos) return match_segments(request, split_path(path));
    std::vector<std::string> decoded;
    for (std::string_view raw : split_path(path)) {
        auto segment = percent_decode(raw, false);
        if (!segment) return {nullptr, 404, {}};
        decoded.push_back(std::move(*segment));
    }
    Segments views(decoded.begin(), decoded.end());
    return match_segments(request, views);
}

Router::Match Router::match_segments(Request& request,
                                     std::span<const std::string_view> segments) const {
    auto find = [&](http::verb method) -> const Route* {
        for (const Route& route : routes_) {
            if (route.method == method && matches(route, segments, nullptr)) return &route;
        }
        return nullptr;
    };
    const Route* route = find(request.method());
    if (!route && request.method() == http::verb::head) route = find(http::verb::get);
    if (route) {
        std::vector<std::pair<std::string, std::string>> params;
        matches(*route, segments, &params);
        if (!params.empty()) request.set_params(std::move(params));
        return {&route->handler, 200, {}};
    }

    std::vector<http::verb> allowed;
    for (const Route& candidate : routes_) {
        if (!matches(candidate, segments, nullptr)) continue;
        if (std::find(allowed.begin(), allowed.end(), candidate.method) == allowed.end()) {
            allowed.push_back(candidate.method);
        }
        if (candidate.method == http::verb::get &&
            std::find(allowed.begin(), allowed.end(), http::verb::head) == allowed.end()) {
            allowed.push_back(http::verb::head);
        }
    }
    if (allowed.empty()) return {nullptr, 404, {}};
    std::string allow;
    for (http::verb method : allowed) {
        if (!allow.empty()) allow += ", ";
        allow += http::to_string(method);
    }
    return {nullptr, 405, std::move(allow)};
}

}  // namespace prefork
