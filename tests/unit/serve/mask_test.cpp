#include "serve/mask.h"

#include <gtest/gtest.h>

namespace dqe::service {
namespace {

TEST(Mask, AddressesPhonesAndDigitsAreReplaced) {
  EXPECT_EQ(mask_payload("mail jo.doe+x@shop.example.com now"), "mail <email> now");
  EXPECT_EQ(mask_payload("call +1 (555) 010-2030 today"), "call <phone> today");
  EXPECT_EQ(mask_payload("call 555.010.2030."), "call <phone>.");
  EXPECT_EQ(mask_payload("2x4 stud 96 in"), "#x# stud ## in");
  EXPECT_EQ(mask_payload("order 12345"), "order #####") << "under 7 digits: not a phone, still masked";
  EXPECT_EQ(mask_payload("a@b is no address, x@y.z is"), "a@b is no address, <email> is");
  EXPECT_EQ(mask_payload("{\"query\":\"caf\xc3\xa9 7\"}"), "{\"query\":\"caf\xc3\xa9 #\"}");
  EXPECT_EQ(mask_payload(""), "");
  EXPECT_EQ(mask_payload("1234567890123456789"), "###################") << "over 15 digits: not a phone";
}

}  // namespace
}  // namespace dqe::service
