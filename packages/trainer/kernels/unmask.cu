// The one translation unit that nvcc compiles into kernels/unmask.fatbin (scripts/build-kernels.mjs).
// Table of contents, in the order a training step uses them:
#include "augment.cu"    // augment_crop: random resized crop + flip of the uint8 cache, normalised
#include "patchify.cu"   // patchify: image -> patch rows, so the patch embedding is a GEMM
#include "layernorm.cu"  // embed_ln_fwd, residual_ln_fwd, ln_recompute, ln_bwd(_768), embed_ln_bwd, copy_rows
#include "attention.cu"  // attn_fwd*, attn_fwd_pipe, attn_bwd_dq*, attn_bwd_dkdv*, attn_bwd_fused: flash-style attention
#include "attention_wgmma.cu"  // attn_fwd_wgmma2, attn_fwd_wgmma4: the forward on Hopper warpgroup MMAs (sm_90a)
#include "class_attention.cu"  // attn_cls_fwd, attn_cls_bwd: the last block's class-token query alone
#include "mlp.cu"        // bias_gelu_fwd, gelu_bwd
#include "mlp_gemm.cu"   // mlp_gemm_gelu: c_fc with its bias and QuickGELU in the epilogue (sm_90a)
#include "head.cu"       // head_forward, head_step: LN_post, projection, logits, losses, their gradients
#include "update.cu"     // mask_sumsq, mask_apply, mask_update: ST gradient + regulariser + GDR + Adam + W'
#include "digest.cu"     // bits_digest: a 64-bit digest of a buffer (GEMM tuning's bit-identity check)
