//! Generates the kernel interface constants from the installed kernel's
//! libsel4 headers: a small C program that includes `<sel4/sel4.h>` is compiled
//! with the host C compiler and prints every number this crate uses (object
//! types, invocation labels, syscall numbers, structure layouts). Nothing is
//! copied by hand: object type and label numbers shift with the kernel's
//! configuration.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the project expects a kernel install when `SEL4_PREFIX` is unset.
const DEFAULT_PREFIX: &str = "/opt/sel4-16.0.0";

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    std::process::exit(1);
}

fn prefix() -> PathBuf {
    println!("cargo:rerun-if-env-changed=SEL4_PREFIX");
    let (p, how) = match env::var_os("SEL4_PREFIX") {
        Some(p) => (PathBuf::from(p), "SEL4_PREFIX"),
        None => (PathBuf::from(DEFAULT_PREFIX), "the default location"),
    };
    if !p.join("libsel4/include/sel4/sel4.h").is_file() {
        fail(&format!(
            "seL4 kernel install not found at {} ({how}): build seL4 16.0.0 for x86_64 (pc99) with \
             VT-x and 64-bit guests on, install it, and set SEL4_PREFIX to the install directory \
             (see README.md, 'The seL4 kernel')",
            p.display()
        ));
    }
    p
}

fn check_config(include: &Path) {
    let cfg = include.join("kernel/gen_config.h");
    let text = fs::read_to_string(&cfg)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", cfg.display())));
    for (flag, what) in [
        ("CONFIG_VTX", "VT-x (KernelVTX=ON)"),
        (
            "CONFIG_X86_64_VTX_64BIT_GUESTS",
            "64-bit guests (KernelX86_64VTX64BitGuests=ON)",
        ),
        (
            "CONFIG_ARCH_X86_64",
            "the x86_64 architecture (KernelSel4Arch=x86_64)",
        ),
    ] {
        let on = text.lines().any(|l| {
            l.starts_with(&format!("#define {flag} ")) || l.trim() == format!("#define {flag}")
        });
        if !on {
            fail(&format!(
                "the seL4 kernel at {} was built without {what}: cloister needs it (see README.md)",
                include.display()
            ));
        }
    }
    if text.contains("#define CONFIG_KERNEL_MCS ") {
        fail("the seL4 kernel was built with MCS; cloister needs the non-MCS kernel (KernelIsMCS=OFF)");
    }
}

/// (Rust name, C expression) pairs printed as `pub const NAME: u64`.
const WORDS: &[(&str, &str)] = &[
    // Object types.
    ("UNTYPED_OBJECT", "seL4_UntypedObject"),
    ("TCB_OBJECT", "seL4_TCBObject"),
    ("ENDPOINT_OBJECT", "seL4_EndpointObject"),
    ("NOTIFICATION_OBJECT", "seL4_NotificationObject"),
    ("CAP_TABLE_OBJECT", "seL4_CapTableObject"),
    ("X86_4K_OBJECT", "seL4_X86_4K"),
    ("X86_LARGE_PAGE_OBJECT", "seL4_X86_LargePageObject"),
    ("X86_PAGE_TABLE_OBJECT", "seL4_X86_PageTableObject"),
    ("X86_PAGE_DIRECTORY_OBJECT", "seL4_X86_PageDirectoryObject"),
    ("X86_PDPT_OBJECT", "seL4_X86_PDPTObject"),
    ("X86_VCPU_OBJECT", "seL4_X86_VCPUObject"),
    ("X86_EPT_PML4_OBJECT", "seL4_X86_EPTPML4Object"),
    ("X86_EPT_PDPT_OBJECT", "seL4_X86_EPTPDPTObject"),
    ("X86_EPT_PD_OBJECT", "seL4_X86_EPTPDObject"),
    ("X86_EPT_PT_OBJECT", "seL4_X86_EPTPTObject"),
    // Object sizes (log2 bytes).
    ("PAGE_BITS", "seL4_PageBits"),
    ("LARGE_PAGE_BITS", "seL4_LargePageBits"),
    ("SLOT_BITS", "seL4_SlotBits"),
    ("TCB_BITS", "seL4_TCBBits"),
    ("NOTIFICATION_BITS", "seL4_NotificationBits"),
    ("ENDPOINT_BITS", "seL4_EndpointBits"),
    ("PAGE_TABLE_BITS", "seL4_PageTableBits"),
    ("PAGE_DIR_BITS", "seL4_PageDirBits"),
    ("PDPT_BITS", "seL4_PDPTBits"),
    ("VCPU_BITS", "seL4_X86_VCPUBits"),
    ("EPT_PML4_BITS", "seL4_X86_EPTPML4Bits"),
    ("EPT_PDPT_BITS", "seL4_X86_EPTPDPTBits"),
    ("EPT_PD_BITS", "seL4_X86_EPTPDBits"),
    ("EPT_PT_BITS", "seL4_X86_EPTPTBits"),
    ("MIN_UNTYPED_BITS", "seL4_MinUntypedBits"),
    ("MAX_UNTYPED_BITS", "seL4_MaxUntypedBits"),
    ("WORD_BITS", "seL4_WordBits"),
    ("MSG_MAX_LENGTH", "seL4_MsgMaxLength"),
    ("MSG_MAX_EXTRA_CAPS", "seL4_MsgMaxExtraCaps"),
    // Initial capabilities.
    ("CAP_INIT_THREAD_TCB", "seL4_CapInitThreadTCB"),
    ("CAP_INIT_THREAD_CNODE", "seL4_CapInitThreadCNode"),
    ("CAP_INIT_THREAD_VSPACE", "seL4_CapInitThreadVSpace"),
    ("CAP_IRQ_CONTROL", "seL4_CapIRQControl"),
    ("CAP_ASID_CONTROL", "seL4_CapASIDControl"),
    ("CAP_INIT_THREAD_ASID_POOL", "seL4_CapInitThreadASIDPool"),
    ("CAP_IO_PORT_CONTROL", "seL4_CapIOPortControl"),
    ("CAP_BOOT_INFO_FRAME", "seL4_CapBootInfoFrame"),
    ("CAP_INIT_THREAD_IPC_BUFFER", "seL4_CapInitThreadIPCBuffer"),
    // Invocation labels.
    ("UNTYPED_RETYPE", "UntypedRetype"),
    ("TCB_CONFIGURE", "TCBConfigure"),
    ("TCB_SET_PRIORITY", "TCBSetPriority"),
    ("TCB_SET_SCHED_PARAMS", "TCBSetSchedParams"),
    ("TCB_WRITE_REGISTERS", "TCBWriteRegisters"),
    ("TCB_RESUME", "TCBResume"),
    ("TCB_SUSPEND", "TCBSuspend"),
    ("TCB_SET_EPT_ROOT", "TCBSetEPTRoot"),
    ("TCB_BIND_NOTIFICATION", "TCBBindNotification"),
    ("CNODE_COPY", "CNodeCopy"),
    ("CNODE_DELETE", "CNodeDelete"),
    ("CNODE_MINT", "CNodeMint"),
    ("IRQ_ACK_IRQ", "IRQAckIRQ"),
    ("IRQ_SET_IRQ_HANDLER", "IRQSetIRQHandler"),
    (
        "X86_IRQ_ISSUE_IRQ_HANDLER_IOAPIC",
        "X86IRQIssueIRQHandlerIOAPIC",
    ),
    ("X86_PDPT_MAP", "X86PDPTMap"),
    ("X86_PAGE_DIRECTORY_MAP", "X86PageDirectoryMap"),
    ("X86_PAGE_TABLE_MAP", "X86PageTableMap"),
    ("X86_PAGE_MAP", "X86PageMap"),
    ("X86_PAGE_MAP_EPT", "X86PageMapEPT"),
    ("X86_PAGE_UNMAP", "X86PageUnmap"),
    ("X86_PAGE_GET_ADDRESS", "X86PageGetAddress"),
    ("X86_ASID_POOL_ASSIGN", "X86ASIDPoolAssign"),
    ("X86_IO_PORT_CONTROL_ISSUE", "X86IOPortControlIssue"),
    ("X86_IO_PORT_IN8", "X86IOPortIn8"),
    ("X86_IO_PORT_OUT8", "X86IOPortOut8"),
    ("X86_VCPU_SET_TCB", "X86VCPUSetTCB"),
    ("X86_VCPU_READ_VMCS", "X86VCPUReadVMCS"),
    ("X86_VCPU_WRITE_VMCS", "X86VCPUWriteVMCS"),
    ("X86_VCPU_ENABLE_IO_PORT", "X86VCPUEnableIOPort"),
    ("X86_VCPU_WRITE_REGISTERS", "X86VCPUWriteRegisters"),
    ("X86_VCPU_WRITE_MSR", "X86VCPUWriteMSR"),
    ("X86_EPT_PDPT_MAP", "X86EPTPDPTMap"),
    ("X86_EPT_PD_MAP", "X86EPTPDMap"),
    ("X86_EPT_PT_MAP", "X86EPTPTMap"),
    // VMEnter message registers.
    ("VMENTER_CALL_EIP_MR", "SEL4_VMENTER_CALL_EIP_MR"),
    (
        "VMENTER_CALL_CONTROL_PPC_MR",
        "SEL4_VMENTER_CALL_CONTROL_PPC_MR",
    ),
    (
        "VMENTER_CALL_INTERRUPT_INFO_MR",
        "SEL4_VMENTER_CALL_INTERRUPT_INFO_MR",
    ),
    ("VMENTER_FAULT_REASON_MR", "SEL4_VMENTER_FAULT_REASON_MR"),
    (
        "VMENTER_FAULT_QUALIFICATION_MR",
        "SEL4_VMENTER_FAULT_QUALIFICATION_MR",
    ),
    (
        "VMENTER_FAULT_INSTRUCTION_LEN_MR",
        "SEL4_VMENTER_FAULT_INSTRUCTION_LEN_MR",
    ),
    (
        "VMENTER_FAULT_GUEST_PHYSICAL_MR",
        "SEL4_VMENTER_FAULT_GUEST_PHYSICAL_MR",
    ),
    ("VMENTER_FAULT_RFLAGS_MR", "SEL4_VMENTER_FAULT_RFLAGS_MR"),
    (
        "VMENTER_FAULT_GUEST_INT_MR",
        "SEL4_VMENTER_FAULT_GUEST_INT_MR",
    ),
    ("VMENTER_FAULT_CR3_MR", "SEL4_VMENTER_FAULT_CR3_MR"),
    ("VMENTER_FAULT_EAX", "SEL4_VMENTER_FAULT_EAX"),
    ("VMENTER_NUM_FAULT_MSGS", "SEL4_VMENTER_NUM_FAULT_MSGS"),
    ("VMENTER_RESULT_FAULT", "SEL4_VMENTER_RESULT_FAULT"),
    ("VMENTER_RESULT_NOTIF", "SEL4_VMENTER_RESULT_NOTIF"),
    // Structure layouts.
    ("BOOTINFO_EXTRA_LEN", "offsetof(seL4_BootInfo, extraLen)"),
    ("BOOTINFO_IPC_BUFFER", "offsetof(seL4_BootInfo, ipcBuffer)"),
    ("BOOTINFO_EMPTY", "offsetof(seL4_BootInfo, empty)"),
    (
        "BOOTINFO_USER_IMAGE_FRAMES",
        "offsetof(seL4_BootInfo, userImageFrames)",
    ),
    (
        "BOOTINFO_CNODE_SIZE_BITS",
        "offsetof(seL4_BootInfo, initThreadCNodeSizeBits)",
    ),
    ("BOOTINFO_UNTYPED", "offsetof(seL4_BootInfo, untyped)"),
    (
        "BOOTINFO_UNTYPED_LIST",
        "offsetof(seL4_BootInfo, untypedList)",
    ),
    ("BOOTINFO_SIZE", "sizeof(seL4_BootInfo)"),
    ("BOOTINFO_FRAME_SIZE", "seL4_BootInfoFrameSize"),
    (
        "BOOTINFO_HEADER_X86_TSC_FREQ",
        "SEL4_BOOTINFO_HEADER_X86_TSC_FREQ",
    ),
    ("SLOT_REGION_START", "offsetof(seL4_SlotRegion, start)"),
    ("SLOT_REGION_END", "offsetof(seL4_SlotRegion, end)"),
    ("UNTYPED_DESC_SIZE", "sizeof(seL4_UntypedDesc)"),
    ("UNTYPED_DESC_PADDR", "offsetof(seL4_UntypedDesc, paddr)"),
    (
        "UNTYPED_DESC_SIZE_BITS",
        "offsetof(seL4_UntypedDesc, sizeBits)",
    ),
    (
        "UNTYPED_DESC_IS_DEVICE",
        "offsetof(seL4_UntypedDesc, isDevice)",
    ),
    ("IPC_BUFFER_SIZE", "sizeof(seL4_IPCBuffer)"),
    ("IPC_BUFFER_MSG", "offsetof(seL4_IPCBuffer, msg)"),
    (
        "IPC_BUFFER_CAPS",
        "offsetof(seL4_IPCBuffer, caps_or_badges)",
    ),
    (
        "IPC_BUFFER_RECEIVE_CNODE",
        "offsetof(seL4_IPCBuffer, receiveCNode)",
    ),
    (
        "USER_CONTEXT_WORDS",
        "sizeof(seL4_UserContext) / sizeof(seL4_Word)",
    ),
    (
        "USER_CONTEXT_RIP",
        "offsetof(seL4_UserContext, rip) / sizeof(seL4_Word)",
    ),
    (
        "USER_CONTEXT_RSP",
        "offsetof(seL4_UserContext, rsp) / sizeof(seL4_Word)",
    ),
    (
        "USER_CONTEXT_RFLAGS",
        "offsetof(seL4_UserContext, rflags) / sizeof(seL4_Word)",
    ),
    (
        "USER_CONTEXT_RDI",
        "offsetof(seL4_UserContext, rdi) / sizeof(seL4_Word)",
    ),
    (
        "VCPU_CONTEXT_WORDS",
        "sizeof(seL4_VCPUContext) / sizeof(seL4_Word)",
    ),
    // Message info and rights encodings, evaluated through libsel4's own
    // bitfield constructors.
    (
        "MSGINFO_LABEL_ONE",
        "seL4_MessageInfo_new(1, 0, 0, 0).words[0]",
    ),
    (
        "MSGINFO_CAPS_UNWRAPPED_ONE",
        "seL4_MessageInfo_new(0, 1, 0, 0).words[0]",
    ),
    (
        "MSGINFO_EXTRA_CAPS_ONE",
        "seL4_MessageInfo_new(0, 0, 1, 0).words[0]",
    ),
    (
        "MSGINFO_LENGTH_ONE",
        "seL4_MessageInfo_new(0, 0, 0, 1).words[0]",
    ),
    (
        "MSGINFO_LABEL_MAX",
        "seL4_MessageInfo_get_label((seL4_MessageInfo_t){ .words = { ~0ull } })",
    ),
    (
        "MSGINFO_LENGTH_MAX",
        "seL4_MessageInfo_get_length((seL4_MessageInfo_t){ .words = { ~0ull } })",
    ),
    ("RIGHTS_ALL", "seL4_AllRights.words[0]"),
    ("RIGHTS_READ_WRITE", "seL4_ReadWrite.words[0]"),
    ("RIGHTS_READ", "seL4_CanRead.words[0]"),
    ("X86_DEFAULT_VM_ATTRIBUTES", "seL4_X86_Default_VMAttributes"),
    (
        "X86_EPT_DEFAULT_VM_ATTRIBUTES",
        "seL4_X86_EPT_Default_VMAttributes",
    ),
];

/// Signed constants (syscall numbers and error codes).
const SIGNED: &[(&str, &str)] = &[
    ("SYS_CALL", "seL4_SysCall"),
    ("SYS_SEND", "seL4_SysSend"),
    ("SYS_NB_SEND", "seL4_SysNBSend"),
    ("SYS_RECV", "seL4_SysRecv"),
    ("SYS_NB_RECV", "seL4_SysNBRecv"),
    ("SYS_YIELD", "seL4_SysYield"),
    ("SYS_VM_ENTER", "seL4_SysVMEnter"),
    ("SYS_DEBUG_PUT_CHAR", "seL4_SysDebugPutChar"),
    ("ERR_NO_ERROR", "seL4_NoError"),
    ("ERR_INVALID_ARGUMENT", "seL4_InvalidArgument"),
    ("ERR_INVALID_CAPABILITY", "seL4_InvalidCapability"),
    ("ERR_ILLEGAL_OPERATION", "seL4_IllegalOperation"),
    ("ERR_RANGE_ERROR", "seL4_RangeError"),
    ("ERR_ALIGNMENT_ERROR", "seL4_AlignmentError"),
    ("ERR_FAILED_LOOKUP", "seL4_FailedLookup"),
    ("ERR_TRUNCATED_MESSAGE", "seL4_TruncatedMessage"),
    ("ERR_DELETE_FIRST", "seL4_DeleteFirst"),
    ("ERR_REVOKE_FIRST", "seL4_RevokeFirst"),
    ("ERR_NOT_ENOUGH_MEMORY", "seL4_NotEnoughMemory"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target_arch != "x86_64" {
        fail("the sel4 crate supports only x86_64");
    }
    let prefix = prefix();
    let include = prefix.join("libsel4/include");
    check_config(&include);
    println!(
        "cargo:rerun-if-changed={}",
        include.join("kernel/gen_config.h").display()
    );

    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR is not set")));
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <sel4/sel4.h>\n#include <sel4/arch/vmenter.h>\n\
         int main(void) {\n",
    );
    for (name, expr) in WORDS {
        let _ = writeln!(
            c,
            "  printf(\"/// `{}`\\npub const {name}: u64 = %llu;\\n\", (unsigned long long)({expr}));",
            expr.replace('"', "\\\"")
        );
    }
    for (name, expr) in SIGNED {
        let _ = writeln!(
            c,
            "  printf(\"/// `{expr}`\\npub const {name}: i64 = %lld;\\n\", (long long)({expr}));"
        );
    }
    c.push_str("  return 0;\n}\n");
    let src = out.join("sel4_probe.c");
    let exe = out.join("sel4_probe");
    fs::write(&src, c).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", src.display())));
    let cc = env::var("HOST_CC")
        .or_else(|_| env::var("CC_x86_64_unknown_linux_gnu"))
        .unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .arg("-std=gnu11")
        .arg("-w")
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run the host C compiler `{cc}` (install gcc): {e}"
            ))
        });
    if !status.success() {
        fail(&format!(
            "compiling the libsel4 probe against {} failed (see the compiler output above): is it an \
             x86_64 seL4 16.x install with VT-x?",
            include.display()
        ));
    }
    let output = Command::new(&exe)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run the libsel4 probe: {e}")));
    if !output.status.success() {
        fail("the libsel4 probe failed");
    }
    let mut rs =
        String::from("// Generated by vmm/sel4-api/build.rs from the installed libsel4 headers.\n");
    rs.push_str(&String::from_utf8_lossy(&output.stdout));
    let _ = writeln!(rs, "/// The kernel install these constants were generated from.\npub const SEL4_PREFIX: &str = {:?};", prefix.display().to_string());
    fs::write(out.join("generated.rs"), rs)
        .unwrap_or_else(|e| fail(&format!("cannot write generated.rs: {e}")));
    let _ = target_os;
}
