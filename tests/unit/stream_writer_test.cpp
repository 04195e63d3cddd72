#include "stream_writer.hpp"

#include <gtest/gtest.h>

namespace prefork {
namespace {

// The bytes of a batch of buffers, as they would go out.
std::string bytes_of(const std::vector<boost::asio::const_buffer>& buffers) {
    std::string out;
    for (const auto& buffer : buffers) {
        out.append(static_cast<const char*>(buffer.data()), buffer.size());
    }
    return out;
}

std::shared_ptr<detail::StreamChannel> channel_with(std::vector<std::string> parts,
                                                    std::size_t limit = 1024) {
    auto channel = std::make_shared<detail::StreamChannel>();
    channel->limit = limit;
    for (auto& part : parts) {
        channel->buffered += part.size();
        channel->parts.push_back(std::move(part));
    }
    return channel;
}

TEST(StreamWriter, EachBatchIsOneChunkThenTheLastChunkEndsIt) {
    auto channel = channel_with({"hello", ", ", "world"});
    StreamWriter writer;
    writer.start(channel, /*chunked=*/true, /*has_body=*/true);
    EXPECT_TRUE(writer.writing()) << "the head is being written";
    EXPECT_FALSE(writer.written(40)) << "the head alone does not complete a response";
    writer.give_back_room();

    std::vector<boost::asio::const_buffer> out;
    ASSERT_EQ(writer.next(out), StreamWriter::Next::write);
    EXPECT_EQ(bytes_of(out), "c\r\nhello, world\r\n");
    EXPECT_FALSE(writer.written(17));
    writer.give_back_room();
    EXPECT_EQ(channel->buffered, 0u) << "the batch's room is the writers' again";

    EXPECT_EQ(writer.next(out), StreamWriter::Next::wait);
    channel->finished = true;
    ASSERT_EQ(writer.next(out), StreamWriter::Next::write);
    EXPECT_EQ(bytes_of(out), "0\r\n\r\n");
    EXPECT_TRUE(writer.written(5)) << "the last chunk completes the response";
    EXPECT_EQ(writer.bytes(), 40u + 17u + 5u);
}

TEST(StreamWriter, ToAnHttp10ClientThePartsGoAsTheyAreAndFinishEndsIt) {
    auto channel = channel_with({"one", "two"});
    StreamWriter writer;
    writer.start(channel, /*chunked=*/false, /*has_body=*/true);
    writer.written(30);
    std::vector<boost::asio::const_buffer> out;
    ASSERT_EQ(writer.next(out), StreamWriter::Next::write);
    EXPECT_EQ(bytes_of(out), "onetwo");
    writer.written(6);
    writer.give_back_room();
    channel->finished = true;
    EXPECT_EQ(writer.next(out), StreamWriter::Next::end) << "no last chunk: the close ends it";
}

TEST(StreamWriter, AResponseWithoutABodyIsCompleteWithItsHead) {
    StreamWriter writer;
    writer.start(channel_with({}), /*chunked=*/true, /*has_body=*/false);
    EXPECT_TRUE(writer.written(30));
}

TEST(StreamWriter, AStreamDroppedBeforeFinishIsCutOff) {
    auto channel = channel_with({});
    StreamWriter writer;
    writer.start(channel, true, true);
    writer.written(30);
    channel->cut_off = true;
    std::vector<boost::asio::const_buffer> out;
    EXPECT_EQ(writer.next(out), StreamWriter::Next::cut_off);
}

TEST(StreamWriter, PartsQueuedBeforeTheDropAreWrittenFirst) {
    auto channel = channel_with({"last words"});
    channel->cut_off = true;
    StreamWriter writer;
    writer.start(channel, true, true);
    writer.written(30);
    std::vector<boost::asio::const_buffer> out;
    EXPECT_EQ(writer.next(out), StreamWriter::Next::write);
}

struct RecordingWaiter : detail::StreamWaiter {
    bool completed = false;
    void complete(boost::system::error_code) override { completed = true; }
};

TEST(StreamWriter, WrittenRoomLetsAWaitingAsyncWriteIn) {
    auto channel = channel_with({std::string(100, 'a')}, /*limit=*/100);
    auto waiter = std::make_shared<RecordingWaiter>();
    channel->waiter = waiter;
    channel->waiting_part = "next";
    StreamWriter writer;
    writer.start(channel, true, true);
    writer.written(30);
    writer.give_back_room();
    EXPECT_FALSE(waiter->completed) << "the buffer is still full";

    std::vector<boost::asio::const_buffer> out;
    ASSERT_EQ(writer.next(out), StreamWriter::Next::write);
    writer.written(106);
    writer.give_back_room();
    EXPECT_TRUE(waiter->completed);
    ASSERT_EQ(channel->parts.size(), 1u);
    EXPECT_EQ(channel->parts.front(), "next");
    EXPECT_EQ(channel->buffered, 4u);
}

}  // namespace
}  // namespace prefork
