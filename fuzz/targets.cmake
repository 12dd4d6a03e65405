# The fuzz targets, one line each:
#   detkit_fuzz_target(NAME HARNESS SEEDS [DEFINES d...] SOURCES src/...)
# NAME     the executable and the CTest name (fuzz.NAME)
# HARNESS  the file in fuzz/ that defines LLVMFuzzerTestOneInput
# SEEDS    the seed corpus folder that detkit_fuzz_seeds writes (jpeg, png, coco, yolo, voc, pt)
# SOURCES  the detkit sources (relative to src/) the harness needs; they are compiled once with clang,
#          coverage and sanitizers, and shared by all targets
set(DETKIT_FUZZ_IMAGE_SOURCES data/image_io.cpp data/exif.cpp data/raster.cpp core/error.cpp core/text.cpp)
set(DETKIT_FUZZ_FORMAT_SOURCES
    data/formats_read.cpp data/formats_write.cpp data/finding.cpp data/dataset.cpp data/image_io.cpp
    data/exif.cpp data/raster.cpp core/boxes.cpp core/error.cpp core/text.cpp core/fs.cpp core/log.cpp)
set(DETKIT_FUZZ_PT_SOURCES models/pt_pickle.cpp models/pt_file.cpp core/error.cpp core/text.cpp core/fs.cpp core/log.cpp)

detkit_fuzz_target(fuzz_jpeg image_fuzzer.cpp jpeg DEFINES DETKIT_FUZZ_ONLY=jpeg SOURCES ${DETKIT_FUZZ_IMAGE_SOURCES})
detkit_fuzz_target(fuzz_png image_fuzzer.cpp png DEFINES DETKIT_FUZZ_ONLY=png SOURCES ${DETKIT_FUZZ_IMAGE_SOURCES})
detkit_fuzz_target(fuzz_coco coco_fuzzer.cpp coco SOURCES ${DETKIT_FUZZ_FORMAT_SOURCES})
detkit_fuzz_target(fuzz_yolo yolo_fuzzer.cpp yolo SOURCES ${DETKIT_FUZZ_FORMAT_SOURCES})
detkit_fuzz_target(fuzz_voc voc_fuzzer.cpp voc SOURCES ${DETKIT_FUZZ_FORMAT_SOURCES})
detkit_fuzz_target(fuzz_pt pt_fuzzer.cpp pt SOURCES ${DETKIT_FUZZ_PT_SOURCES})
