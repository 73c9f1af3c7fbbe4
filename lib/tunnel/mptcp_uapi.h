// The kernel's MPTCP user API as this code needs it, whatever the headers it is built
// against. OpenWrt 23.05 builds with Linux 5.15 headers, which have struct mptcp_info
// (5.9) but not the SOL_MPTCP getsockopts (MPTCP_INFO, MPTCP_TCPINFO,
// MPTCP_SUBFLOW_ADDRS) nor their structs, which came with 5.16. The values and layouts
// below are the kernel's ABI (include/uapi/linux/mptcp.h since 5.16) and never change;
// whether the running kernel answers them is a run-time question (see
// mptcp_sockopts_supported()).
#pragma once

#include <linux/mptcp.h>
#include <linux/socket.h>
#include <linux/types.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif

// One test covers the whole 5.16 set: the three options and the two structs arrived in
// one kernel release, and headers define the options as macros.
#ifndef MPTCP_SUBFLOW_ADDRS
#define MPTCP_INFO 1
#define MPTCP_TCPINFO 2
#define MPTCP_SUBFLOW_ADDRS 3

struct mptcp_subflow_data {
  __u32 size_subflow_data;  // size of this structure in user space
  __u32 num_subflows;       // set by the kernel
  __u32 size_kernel;        // set by the kernel
  __u32 size_user;          // size of one element that follows
} __attribute__((aligned(8)));

struct mptcp_subflow_addrs {
  union {
    __kernel_sa_family_t sa_family;
    struct sockaddr sa_local;
    struct sockaddr_in sin_local;
    struct sockaddr_in6 sin6_local;
    struct __kernel_sockaddr_storage ss_local;
  };
  union {
    struct sockaddr sa_remote;
    struct sockaddr_in sin_remote;
    struct sockaddr_in6 sin6_remote;
    struct __kernel_sockaddr_storage ss_remote;
  };
};
#define MPUDP_MPTCP_UAPI_FALLBACK 1
#endif

namespace mpudp {

// Whether the running kernel answers the SOL_MPTCP getsockopts (Linux 5.16 and later),
// probed once on a fresh MPTCP socket. When it does not, says so once in the log: status
// shows no subflows and the send limit sees one path.
bool mptcp_sockopts_supported();

// True when `fd`, an MPTCP socket, carries plain TCP (the peer or a middlebox did not do
// MPTCP). Newer kernels say so in MPTCP_INFO; a fallen-back socket on any kernel hands
// SOL_MPTCP options to TCP, which refuses them. Before 5.16 an MPTCP socket refuses every
// SOL_MPTCP and SOL_TCP option itself, unless it fell back: then TCP answers TCP_INFO.
bool mptcp_fell_back(int fd);

}  // namespace mpudp
