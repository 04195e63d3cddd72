#include <prefork/common/inherited_fds.hpp>

#include <fcntl.h>
#include <linux/close_range.h>
#include <unistd.h>

namespace prefork {

void mark_close_on_exec_from(int first) {
    ::close_range(static_cast<unsigned>(first), ~0U, CLOSE_RANGE_CLOEXEC);
}

}  // namespace prefork
