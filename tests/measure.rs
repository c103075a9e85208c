//! The measurement layer: procfs parsing, the host sampler against real allocations, the device
//! probe on CPU, and (in a CUDA build with a GPU) the driver memory-pool accounting.

use candle_core::Device;
use std::time::Duration;
use vosbench::cuda::memory::DeviceMemory;
use vosbench::cuda::probe::{
    cpuinfo_field, detect_jetson, format_cuda_version, format_cudnn_version, probe,
};
use vosbench::host::procfs::{
    self as measure, parse_kb_field, parse_meminfo, system_memory, HostSampler,
};

const MIB: u64 = 1024 * 1024;

#[test]
fn meminfo_parses_used_as_total_minus_available() {
    let text = "MemTotal:       16318412 kB\nMemFree:         1234567 kB\nMemAvailable:   10000000 kB\nBuffers:  1 kB\n";
    let m = parse_meminfo(text).unwrap();
    assert_eq!(m.total_bytes, 16318412 * 1024);
    assert_eq!(m.available_bytes, 10000000 * 1024);
    assert_eq!(m.used_bytes, (16318412 - 10000000) * 1024);
    // Old kernels without MemAvailable: refuse rather than guess.
    assert!(parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\n").is_err());
}

#[test]
fn kb_fields_need_the_exact_key_and_unit() {
    let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads: 3\n";
    assert_eq!(parse_kb_field(status, "VmRSS"), Some(1024 * 1024));
    assert_eq!(parse_kb_field(status, "VmHWM"), Some(2048 * 1024));
    assert_eq!(parse_kb_field(status, "Threads"), Some(3));
    assert_eq!(parse_kb_field(status, "VmRS"), None);
    assert_eq!(parse_kb_field("VmRSS: 5 MB\n", "VmRSS"), None);
}

#[test]
fn system_memory_is_consistent() {
    if !measure::host_memory_supported() {
        let e = system_memory().unwrap_err().to_string();
        assert!(e.contains("unsupported"), "{e}");
        return;
    }
    let m = system_memory().unwrap();
    assert!(m.total_bytes > 64 * MIB);
    assert!(m.available_bytes <= m.total_bytes);
    assert_eq!(m.used_bytes + m.available_bytes, m.total_bytes);
}

/// Allocate and touch `mib` MiB, hold it, and return it (so the caller decides when to free).
fn touch(mib: usize) -> Vec<u8> {
    let mut v = vec![0u8; mib << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
    v
}

/// All RSS-dependent checks in one test, so no other test of this binary allocates meanwhile.
#[test]
fn host_sampler_sees_a_transient_allocation_and_resets() {
    if !measure::host_memory_supported() {
        return;
    }
    let sampler = HostSampler::start(Duration::from_millis(2));
    assert!(sampler.error().is_none(), "{:?}", sampler.error());
    let before = measure::current_rss_bytes();
    assert!(before > 0);

    let block = touch(96);
    let during = measure::current_rss_bytes();
    assert!(
        during >= before + 90 * MIB,
        "RSS {before} -> {during} after touching 96 MiB"
    );
    std::thread::sleep(Duration::from_millis(30));
    drop(block);
    let after = measure::current_rss_bytes();
    let peak = sampler.peak_rss_bytes();
    eprintln!(
        "RSS before {:.1} MiB, during {:.1}, after free {:.1}, peak {:.1} (VmHWM used: {}), samples {}",
        measure::to_mib(before),
        measure::to_mib(during),
        measure::to_mib(after),
        measure::to_mib(peak),
        sampler.uses_kernel_high_water_mark(),
        sampler.samples()
    );
    assert!(
        peak >= during,
        "peak {peak} below the RSS seen during {during}"
    );
    // A large block is returned to the OS on free (mmap), so the peak outlives it.
    assert!(after + 64 * MIB < peak, "after {after}, peak {peak}");

    sampler.reset_peak();
    let reset = sampler.peak_rss_bytes();
    assert!(
        reset + 64 * MIB < peak,
        "peak after reset {reset} should have dropped from {peak}"
    );
    assert!(sampler.system_peak_used_bytes() > 0);

    // A spike shorter than the sampling interval is caught by VmHWM when it can be reset.
    let slow = HostSampler::start(Duration::from_secs(60));
    let base = measure::current_rss_bytes();
    drop(touch(64));
    if slow.uses_kernel_high_water_mark() {
        assert!(slow.peak_rss_bytes() >= base + 60 * MIB);
    } else {
        eprintln!("clear_refs not writable here: sub-interval spikes are not caught");
    }
    slow.stop();
    sampler.stop();
}

#[test]
fn no_device_memory_on_cpu() {
    assert!(DeviceMemory::for_device(&Device::Cpu).is_none());
}

#[test]
fn cpu_probe_reports_the_host_only() {
    let r = probe(&Device::Cpu, &vosbench::host::HostRoot::system()).unwrap();
    assert_eq!(r.kind, "cpu");
    assert!(r.compute_capability.is_none());
    assert!(r.total_bytes.is_none() && r.free_bytes.is_none());
    assert!(r.driver_cuda_version.is_none() && r.cudnn_version.is_none());
    assert!(!r.unified_memory);
    if measure::host_memory_supported() {
        let m = system_memory().unwrap();
        assert_eq!(r.host.total_ram_bytes, Some(m.total_bytes));
        assert!(r.host.available_cores.unwrap() >= 1);
        assert!(r.host.logical_cores.unwrap() >= r.host.available_cores.unwrap());
    }
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "kind",
        "name",
        "unified_memory",
        "total_bytes",
        "free_bytes",
        "host",
    ] {
        assert!(json.get(key).is_some(), "no {key} in {json}");
    }
    assert!(json["total_bytes"].is_null());
}

#[test]
fn probe_cli_writes_json_and_no_tuning_table_on_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe.json");
    vosbench::cli::probe::run(vosbench::cli::probe::Args {
        device: Some("cpu".into()),
        workspace_mb: Some(256),
        models: vec!["sam2.1_tiny".into()],
        imgsz: None,
        precision: "f32".into(),
        tf32: false,
        check_attention: false,
        check_kernels: false,
        check_graphs: false,
        json: Some(out.clone()),
        host_root: None,
    })
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["kind"], "cpu");
    let t = &v["convolution_tuning"];
    assert_eq!(t["ran"], false);
    assert_eq!(t["reason"], "cuDNN tuning applies to CUDA devices");
    assert_eq!(t["workspace_mb"], 256);
    assert_eq!(t["table"]["entries"].as_array().unwrap().len(), 0);
    // A bad device is the user's error (exit code 2).
    let e = vosbench::cli::probe::run(vosbench::cli::probe::Args {
        device: Some("gpu7".into()),
        workspace_mb: None,
        models: vec![],
        imgsz: None,
        precision: "f32".into(),
        tf32: false,
        check_attention: false,
        check_kernels: false,
        check_graphs: false,
        json: None,
        host_root: None,
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        v.get("attention_check").is_none(),
        "not asked for, not reported"
    );
    // The fused-attention, kernel and graph checks need a CUDA device: on the CPU each is the
    // user's error, named by its own flag, and fails before anything is written.
    let out2 = dir.path().join("probe2.json");
    for (attention, kernels, graphs, flag) in [
        (true, false, false, "--check-attention"),
        (false, true, false, "--check-kernels"),
        (false, false, true, "--check-graphs"),
    ] {
        let e = vosbench::cli::probe::run(vosbench::cli::probe::Args {
            device: Some("cpu".into()),
            workspace_mb: None,
            models: vec![],
            imgsz: None,
            precision: "f32".into(),
            tf32: false,
            check_attention: attention,
            check_kernels: kernels,
            check_graphs: graphs,
            json: Some(out2.clone()),
            host_root: None,
        })
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains(flag), "{e}");
        assert!(!out2.exists());
    }
}

#[test]
fn platform_details_parse() {
    let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\n";
    assert_eq!(
        cpuinfo_field(cpuinfo, "model name").as_deref(),
        Some("AMD EPYC 7B13")
    );
    assert_eq!(cpuinfo_field(cpuinfo, "Hardware"), None);
    assert_eq!(detect_jetson(None, None), None);
    assert_eq!(detect_jetson(None, Some("Raspberry Pi 4 Model B\0")), None);
    assert_eq!(
        detect_jetson(None, Some("NVIDIA Jetson AGX Orin Developer Kit\0")).as_deref(),
        Some("NVIDIA Jetson AGX Orin Developer Kit")
    );
    assert_eq!(
        detect_jetson(
            Some("# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic\n"),
            Some("NVIDIA Jetson Orin Nano\0")
        )
        .as_deref(),
        Some("NVIDIA Jetson Orin Nano (R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic)")
    );
    assert_eq!(format_cuda_version(13000), "13.0");
    assert_eq!(format_cuda_version(12040), "12.4");
    assert_eq!(format_cudnn_version(91002), "9.10.2");
    assert_eq!(format_cudnn_version(8907), "8.9.7");
}

/// Run on a GPU machine: `VOSBENCH_CUDA_TESTS=1` with a CUDA build.
#[cfg(feature = "cuda")]
#[test]
fn cuda_pool_accounting_tracks_tensors() {
    if std::env::var("VOSBENCH_CUDA_TESTS").is_err() {
        eprintln!("skipped: set VOSBENCH_CUDA_TESTS=1 on a machine with a GPU");
        return;
    }
    use candle_core::{DType, Tensor};
    use vosbench::cuda::memory::Accounting;
    let dev = Device::new_cuda(0).unwrap();
    let mem = DeviceMemory::for_device(&dev).expect("CUDA device has memory accounting");
    let r = probe(&dev, &vosbench::host::HostRoot::system()).unwrap();
    eprintln!("{}", vosbench::cli::probe::render(&r));
    assert_eq!(r.kind, "cuda");
    assert!(r.total_bytes.unwrap() > r.free_bytes.unwrap());
    eprintln!(
        "accounting {:?} ({:?}), release threshold {:?}",
        mem.accounting(),
        mem.fallback_reason(),
        mem.release_threshold().unwrap()
    );
    let size = 256 * MIB;
    dev.synchronize().unwrap();
    mem.reset_peak().unwrap();
    let used0 = mem.used_bytes().unwrap();
    let t = Tensor::zeros((size / 4) as usize, DType::F32, &dev).unwrap();
    dev.synchronize().unwrap();
    let used1 = mem.used_bytes().unwrap();
    let peak1 = mem.peak_used_bytes().unwrap();
    drop(t);
    dev.synchronize().unwrap();
    let used2 = mem.used_bytes().unwrap();
    let reserved2 = mem.reserved_bytes().unwrap();
    let peak2 = mem.peak_used_bytes().unwrap();
    let rpeak2 = mem.peak_reserved_bytes().unwrap();
    mem.trim().unwrap();
    let reserved3 = mem.reserved_bytes().unwrap();
    mem.reset_peak().unwrap();
    let peak4 = mem.peak_used_bytes().unwrap();
    eprintln!(
        "used {used0} -> {used1} -> {used2}; peak {peak1} / {peak2} (reserved peak {rpeak2}); \
         reserved {reserved2} -> trimmed {reserved3}; peak after reset {peak4}"
    );
    assert!(used1 >= used0 + size);
    assert!(peak1 >= used1 && peak2 >= used0 + size);
    if mem.accounting() == Accounting::MemoryPool {
        assert_eq!(mem.release_threshold().unwrap(), Some(u64::MAX));
        assert!(rpeak2 >= peak2, "reserved peak below used peak");
        assert!(used2 + size <= used1, "freed tensor still counted");
        assert!(
            reserved2 >= used0 + size,
            "release threshold should keep freed memory"
        );
        assert!(
            reserved3 + size <= reserved2,
            "trim should release the pool's free memory"
        );
        assert!(peak4 + size <= peak2, "reset should restart the peak");
    }
}
